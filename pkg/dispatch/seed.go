package dispatch

import (
	"embed"
	"path"
	"strings"
)

//go:embed testdata/seed/*.json
var seedFS embed.FS

// SeedEvents returns one ready-to-publish event per channel, keyed by channel
// id: the Java request example of each API page written as an input event
// (envelope with event_id and request). They pass Prepare; "worker dev
// --demo" publishes them. Each call returns new copies.
func SeedEvents() map[string][]byte {
	entries, err := seedFS.ReadDir("testdata/seed")
	if err != nil { // cannot happen: the directory is embedded
		return nil
	}
	events := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := seedFS.ReadFile(path.Join("testdata/seed", e.Name()))
		if err != nil {
			continue
		}
		events[strings.TrimSuffix(e.Name(), ".json")] = b
	}
	return events
}
