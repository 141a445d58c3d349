package statusclient

import (
	"strings"
	"unicode"

	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/clip"
)

// maxText bounds every string of a status as the commands show it.
const maxText = 512

// sanitize makes every string of an agent's status safe to print on an
// operator's terminal: another agent on the LAN is untrusted, and its ids,
// versions or errors could otherwise carry escape sequences that rewrite
// the screen, or bidirectional overrides that make it read otherwise.
// Runes that are not printable become U+FFFD, and long strings are cut.
func sanitize(st *peerproto.Status) {
	for _, s := range []*string{&st.AgentID, &st.FleetID} {
		*s = text(*s)
	}
	for i := range st.Peers {
		p := &st.Peers[i]
		for _, s := range []*string{&p.Addr, &p.ID, &p.Source, &p.Fleet, &p.BanReason, &p.Error} {
			*s = text(*s)
		}
	}
	for i := range st.Subscriptions {
		s := &st.Subscriptions[i]
		for _, f := range []*string{&s.Product, &s.Channel, &s.InstalledVersion, &s.LastError} {
			*f = text(*f)
		}
		s.LastOutcome = peerproto.Outcome(text(string(s.LastOutcome)))
		if p := s.Progress; p != nil {
			p.Version, p.Phase = text(p.Version), text(p.Phase)
		}
		if t := s.LastTransfer; t != nil && len(t.OriginReasons) > 0 {
			reasons := make(map[string]int64, len(t.OriginReasons))
			for k, v := range t.OriginReasons {
				reasons[text(k)] += v
			}
			t.OriginReasons = reasons
		}
	}
}

// text is s with every rune that is not printable replaced, cut to at most
// maxText bytes.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return unicode.ReplacementChar
	}, clip.String(s, maxText))
}
