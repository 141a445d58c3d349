// Package clip shortens text that fleetcast did not write (names, headers,
// peers' words, archive entries, reasons) before it goes into a message,
// a log line or a state file, so that none of them can grow without bound
// or carry invalid UTF-8.
package clip

import "strings"

// marker ends a string that was cut.
const marker = "..."

// String returns s without its invalid UTF-8, cut to at most n bytes on a
// rune boundary, the last three of them "..." when it was cut. Cutting
// again changes nothing.
func String(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "")
	}
	return strings.ToValidUTF8(s[:max(n-len(marker), 0)], "") + marker
}
