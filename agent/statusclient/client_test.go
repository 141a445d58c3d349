package statusclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/agent/fleettls"
	"github.com/fleetcast/fleetcast/agent/peerproto"
	"github.com/fleetcast/fleetcast/internal/nettest"
)

func testFleet(t *testing.T, fill byte) *fleettls.Fleet {
	t.Helper()
	f, err := fleettls.FromSecret(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// statusHandler answers /v1/status with st, as the agent does.
func statusHandler(st peerproto.Status) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	return mux
}

// serve starts h over plain HTTP ("http"), TLS with httptest's certificate
// ("https") or TLS as a member of fleet ("fleet"); it returns host:port.
func serve(t *testing.T, kind string, h http.Handler, fleet *fleettls.Fleet) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some cases
	switch kind {
	case "http":
		srv.Start()
	case "https":
		srv.StartTLS()
	case "fleet":
		srv.TLS = fleet.ServerTLSOptionalClient()
		srv.StartTLS()
	default:
		t.Fatalf("server kind %q", kind)
	}
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func withTimeout(c *Client, d time.Duration) *Client {
	c.Timeout = d
	return c
}

func TestFetch(t *testing.T) {
	fleet, other := testFleet(t, 'a'), testFleet(t, 'b')
	want := peerproto.Status{AgentID: "agent-1", FleetID: fleet.ID(), RootVersion: 2, Peers: []peerproto.PeerStatus{},
		Subscriptions: []peerproto.SubscriptionStatus{{Product: "app", Channel: "stable", InstalledSequence: 7, InstalledVersion: "1.2.0"}}}
	good := statusHandler(want)
	huge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"agent_id":"` + strings.Repeat("x", MaxStatusBytes) + `"}`))
	})
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	notFound := http.NotFoundHandler()
	notJSON := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	tests := []struct {
		name    string
		server  string // http, https, fleet, or "" for no server
		handler http.Handler
		client  *Client
		wantErr error  // errors.Is
		wantMsg string // in the error text
	}{
		{name: "open fleet, plain HTTP", server: "http", handler: good, client: New(fleettls.Open())},
		{name: "fleet member over TLS", server: "fleet", handler: good, client: New(fleet)},
		{name: "probe over TLS", server: "https", handler: good, client: NewProbing()},
		{name: "probe over fleet TLS", server: "fleet", handler: good, client: NewProbing()},
		{name: "probe falls back to plain HTTP", server: "http", handler: good, client: New(nil)},
		{name: "fleet client, plain agent", server: "http", handler: good, client: New(fleet),
			wantErr: ErrPlainHTTP, wantMsg: "names a fleet secret"},
		{name: "fleet client, other fleet", server: "fleet", handler: good, client: New(other),
			wantMsg: "not this fleet's key"},
		{name: "open client, TLS agent", server: "fleet", handler: good, client: New(fleettls.Open()),
			wantMsg: "agent at "},
		{name: "oversized body", server: "http", handler: huge, client: NewProbing(), wantErr: ErrTooLarge},
		{name: "timeout", server: "http", handler: stuck, client: withTimeout(NewProbing(), 100*time.Millisecond),
			wantErr: ErrTimeout, wantMsg: "within 100ms"},
		{name: "unreachable", client: NewProbing(), wantErr: ErrUnreachable, wantMsg: "no agent answers at 127.0.0.1:"},
		{name: "not found", server: "http", handler: notFound, client: NewProbing(), wantMsg: "HTTP 404"},
		{name: "not an agent", server: "https", handler: notJSON, client: NewProbing(), wantMsg: "is this a fleetcast agent?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := nettest.DeadAddr(t)
			if tt.server != "" {
				addr = serve(t, tt.server, tt.handler, fleet)
			}
			got, err := Fetch(context.Background(), tt.client, addr)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if got.AgentID != want.AgentID || len(got.Subscriptions) != 1 || got.Subscriptions[0].InstalledSequence != 7 {
					t.Fatalf("Fetch = %+v, want %+v", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Fetch = %+v, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Fetch error %q, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), addr) {
				t.Errorf("Fetch error %q, want %q and the address %s", err, tt.wantMsg, addr)
			}
		})
	}
}

func TestFetchBadAddress(t *testing.T) {
	_, err := Fetch(context.Background(), NewProbing(), "localhost")
	if err == nil || !strings.Contains(err.Error(), "want host:port") {
		t.Fatalf("Fetch(localhost) error %v, want host:port", err)
	}
}

// TestProbeRemembersPlainHTTP: after one fallback, the probing client goes
// to plain HTTP directly (a --watch loop does not handshake every second).
func TestProbeRemembersPlainHTTP(t *testing.T) {
	addr := serve(t, "http", statusHandler(peerproto.Status{AgentID: "x"}), nil)
	c := NewProbing()
	for range 2 {
		if _, err := Fetch(context.Background(), c, addr); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := c.plainAddrs.Load(addr); !ok {
		t.Errorf("client did not remember that %s speaks plain HTTP", addr)
	}
}
