package statusclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
)

func TestSanitize(t *testing.T) {
	evil := "v1\x1b[2J\x1b]0;pwned\x07\u202eexe.txt\r\n"
	st := peerproto.Status{AgentID: evil, FleetID: evil,
		Peers: []peerproto.PeerStatus{{Addr: evil, ID: evil, Source: evil, Fleet: evil, BanReason: strings.Repeat("x", 10000), Error: evil}},
		Subscriptions: []peerproto.SubscriptionStatus{{Product: evil, Channel: evil, InstalledVersion: evil, LastError: evil,
			LastOutcome: peerproto.Outcome(evil), Progress: &peerproto.Progress{Version: evil, Phase: evil},
			LastTransfer: &peerproto.Transfer{OriginReasons: map[string]int64{evil: 2, "v1\x1b": 1}}}}}
	sanitize(&st)
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	walkStrings(st, &all)
	for _, s := range all {
		for _, r := range s {
			if !unicode.IsPrint(r) {
				t.Errorf("%q still holds %U", s, r)
			}
		}
		if len(s) > maxText+3 {
			t.Errorf("a string of %d bytes was not cut", len(s))
		}
	}
	if len(all) < 15 {
		t.Errorf("checked %d strings, want every string field: %s", len(all), b)
	}
	if got := st.Subscriptions[0].InstalledVersion; !strings.HasPrefix(got, "v1") || !strings.Contains(got, "exe.txt") {
		t.Errorf("printable text lost: %q", got)
	}
}

// walkStrings collects every string in v, found by reflection, so that a
// field added to the status later is checked too.
func walkStrings(v any, out *[]string) {
	walkValue(reflect.ValueOf(v), out)
}

func walkValue(v reflect.Value, out *[]string) {
	switch v.Kind() {
	case reflect.String:
		*out = append(*out, v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkValue(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkValue(v.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkValue(v.Index(i), out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkValue(k, out)
			walkValue(v.MapIndex(k), out)
		}
	}
}

// TestFetchSanitizes: what Fetch returns from a hostile agent is safe to print.
func TestFetchSanitizes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"agent_id":"a\u001b[2Jb","subscriptions":[{"product":"p","channel":"c","last_error":"\u202eboom\u0007"}]}`))
	}))
	defer srv.Close()
	st, err := Fetch(context.Background(), New(fleettls.Open()), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if st.AgentID != "a\uFFFD[2Jb" || st.Subscriptions[0].LastError != "\uFFFDboom\uFFFD" {
		t.Errorf("Fetch returned %q and %q, want control and format runes replaced", st.AgentID, st.Subscriptions[0].LastError)
	}
}
