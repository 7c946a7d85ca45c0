// Command validate-dashboard checks Grafana dashboard JSON files against the dashboard model of
// the Grafana Foundation SDK (github.com/grafana/grafana-foundation-sdk/go, pinned in go.mod).
//
// Each file is decoded with the SDK's strict decoder, with every panel and data-query plugin the
// SDK knows registered: an unknown or misspelt field, a wrong type or a missing required field
// anywhere (dashboard, panels, panel options, field config, Prometheus targets) is an error. Then
// the SDK's Validate runs, and every panel must be of a type the SDK has a schema for, so no
// panel's options escape the strict decoding.
//
// Usage: validate-dashboard FILE.json...; prints one line per problem, exits 1 if there was any.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// problem is err's message, or "" when err carries none: the SDK's strict decoders return their
// error list as an error even when it is empty (a non-nil interface around a nil cog.BuildErrors).
func problem(err error) string {
	var errs cog.BuildErrors
	if err == nil || (errors.As(err, &errs) && len(errs) == 0) {
		return ""
	}
	return err.Error()
}

func check(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var board dashboard.Dashboard
	if msg := problem(board.UnmarshalJSONStrict(raw)); msg != "" {
		return []string{fmt.Sprintf("%s: %s", path, msg)}
	}
	var problems []string
	if msg := problem(board.Validate()); msg != "" {
		problems = append(problems, fmt.Sprintf("%s: %s", path, msg))
	}
	// Panel types are read from the raw JSON: the SDK's PanelOrRowPanel decoder drops a panel
	// whose (empty) error list it returns as an error, so board.Panels cannot be trusted for this.
	var raws struct {
		Panels []struct {
			Title  string `json:"title"`
			Type   string `json:"type"`
			Panels []struct {
				Title string `json:"title"`
				Type  string `json:"type"`
			} `json:"panels"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &raws); err != nil {
		return append(problems, fmt.Sprintf("%s: %v", path, err))
	}
	known := func(title, kind string) {
		if _, found := cog.ConfigForPanelcfgVariant(kind); !found {
			problems = append(problems, fmt.Sprintf("%s: panel %q: type %q has no schema in the SDK", path, title, kind))
		}
	}
	for _, panel := range raws.Panels {
		if panel.Type != "row" {
			known(panel.Title, panel.Type)
		}
		for _, inner := range panel.Panels {
			known(inner.Title, inner.Type)
		}
	}
	return problems
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate-dashboard FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		for _, problem := range check(path) {
			fmt.Println(problem)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
