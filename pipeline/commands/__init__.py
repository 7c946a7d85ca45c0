"""``modstream`` command modules; each exports ``COMMANDS: list[click.Command]``."""
