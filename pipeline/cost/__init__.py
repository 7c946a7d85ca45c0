"""Cost reporting: prices from the settings, the ledger read for a window, one report document
shared by ``modstream cost`` and the lead dashboard's cost panel."""
