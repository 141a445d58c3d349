package fleettls_test

import (
	"net"
	"net/http"

	"github.com/fleetcast/fleetcast/agent/fleettls"
)

// The agent's one listener serves peers and the local status API: status
// stays readable without the secret (curl -k), peer endpoints do not.
func Example() {
	fleet, err := fleettls.Load("") // the config's fleet_secret_file
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { /* ... */ })
	mux.HandleFunc("GET /v1/peer/", func(w http.ResponseWriter, r *http.Request) {
		if !fleet.PeerAuthenticated(r) {
			http.Error(w, "not a member of fleet "+fleet.ID(), http.StatusForbidden)
			return
		}
		// ...
	})
	srv := &http.Server{Handler: mux, TLSConfig: fleet.ServerTLSOptionalClient()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	if fleet.Closed() {
		go srv.ServeTLS(ln, "", "") // certificates come from TLSConfig
	} else {
		go srv.Serve(ln)
	}
	defer srv.Close()

	// Peers are fetched with the fleet's transport and scheme.
	client := &http.Client{Transport: fleet.Transport(nil)}
	_ = client
	_ = fleet.Scheme() + "://" + ln.Addr().String() + "/v1/peer/..."
}
