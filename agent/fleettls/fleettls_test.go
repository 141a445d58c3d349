package fleettls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/testlog"
)

var (
	secretA = []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	secretB = []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
)

func mustFleet(t testing.TB, secret []byte) *Fleet {
	t.Helper()
	f, err := FromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// peerServer serves "peer=BOOL" (fleet.PeerAuthenticated) over conf, plain
// HTTP when conf is nil, on 127.0.0.1.
type peerServer struct {
	*httptest.Server
	calls  atomic.Int32
	errlog testlog.Buffer
}

func newPeerServer(t *testing.T, fleet *Fleet, conf *tls.Config) *peerServer {
	t.Helper()
	s := &peerServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if r.TLS != nil && r.TLS.Version != tls.VersionTLS13 {
			t.Errorf("TLS version %x, want 1.3", r.TLS.Version)
		}
		fmt.Fprintf(w, "peer=%v", fleet.PeerAuthenticated(r))
	}))
	s.Config.ErrorLog = log.New(&s.errlog, "", 0)
	if conf == nil {
		s.Start()
	} else {
		s.TLS = conf
		s.StartTLS()
	}
	t.Cleanup(s.Close)
	return s
}

// get fetches url with a client over conf and returns the body.
func get(t *testing.T, conf *tls.Config, url string) (string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: conf}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return string(b), err
}

func TestSameFleetConnects(t *testing.T) {
	a := mustFleet(t, secretA)
	for name, conf := range map[string]*tls.Config{"required": a.ServerTLS(), "optional": a.ServerTLSOptionalClient()} {
		t.Run(name, func(t *testing.T) {
			s := newPeerServer(t, a, conf)
			if !strings.HasPrefix(s.URL, a.Scheme()+"://") {
				t.Fatalf("server URL %s, fleet scheme %s", s.URL, a.Scheme())
			}
			c := &http.Client{Transport: a.Transport(nil), Timeout: 10 * time.Second}
			resp, err := c.Get(s.URL)
			if err != nil {
				t.Fatalf("same fleet: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "peer=true" {
				t.Errorf("body %q, want peer=true", body)
			}
		})
	}
}

// withoutServerCheck is conf accepting any server, so that the server's
// own check is what is tested.
func withoutServerCheck(conf *tls.Config) *tls.Config {
	conf.VerifyConnection = nil
	return conf
}

func TestOtherFleetRefused(t *testing.T) {
	a, b := mustFleet(t, secretA), mustFleet(t, secretB)
	tests := []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		wantServer string // in the server's error log when the server refuses
		wantClient string // in the client's error when the client refuses
	}{
		{"server A refuses client B", a.ServerTLS(), withoutServerCheck(b.ClientTLS()), "not this fleet's key", ""},
		{"optional server A refuses client B", a.ServerTLSOptionalClient(), withoutServerCheck(b.ClientTLS()), "not this fleet's key", ""},
		{"client A refuses server B", b.ServerTLS(), a.ClientTLS(), "", "not this fleet's key"},
		{"server A refuses A's certificate without A's key", a.ServerTLS(), withoutServerCheck(stolenCert(a, b).ClientTLS()), "invalid signature", ""},
		{"client A refuses A's certificate without A's key", stolenCert(a, b).ServerTLS(), a.ClientTLS(), "", "invalid signature"},
		{"server A requires a certificate", a.ServerTLS(), &tls.Config{InsecureSkipVerify: true}, "client didn't provide a certificate", ""},
		{"server A refuses TLS 1.2", a.ServerTLS(), withoutServerCheck(&tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: a.ClientTLS().Certificates}), "unsupported versions", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPeerServer(t, a, tt.server)
			body, err := get(t, tt.client, s.URL)
			if err == nil {
				t.Fatalf("request succeeded (%q), want a failed handshake", body)
			}
			if n := s.calls.Load(); n != 0 {
				t.Errorf("handler ran %d times", n)
			}
			if tt.wantClient != "" {
				if !strings.Contains(err.Error(), tt.wantClient) {
					t.Errorf("client error %q lacks %q", err, tt.wantClient)
				}
				return
			}
			waitFor(t, func() bool { return strings.Contains(s.errlog.String(), tt.wantServer) },
				func() string { return fmt.Sprintf("server log %q lacks %q", s.errlog.String(), tt.wantServer) })
		})
	}
}

// stolenCert is a fleet that copied thief's public certificate but signs
// with its own key, as a host without the secret would.
func stolenCert(victim, thief *Fleet) *Fleet {
	f := *victim
	f.cert.PrivateKey = thief.cert.PrivateKey
	return &f
}

// waitFor polls cond with a deadline: the server logs the failed handshake
// on its own goroutine.
func waitFor(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoCertificateOnOptionalServer(t *testing.T) {
	a := mustFleet(t, secretA)
	s := newPeerServer(t, a, a.ServerTLSOptionalClient())
	body, err := get(t, &tls.Config{InsecureSkipVerify: true}, s.URL) // curl -k
	if err != nil {
		t.Fatal(err)
	}
	if body != "peer=false" {
		t.Errorf("body %q, want peer=false", body)
	}
}

func TestOpenFleet(t *testing.T) {
	o := Open()
	if o.Closed() || o.ID() != "open" || o.Scheme() != "http" || o.ServerTLS() != nil || o.ServerTLSOptionalClient() != nil || o.ClientTLS() != nil {
		t.Fatalf("open fleet: closed %v id %q scheme %q, or a TLS config", o.Closed(), o.ID(), o.Scheme())
	}
	base := &http.Transport{}
	if o.Transport(base) != base {
		t.Error("Transport of the open fleet is not base")
	}
	s := newPeerServer(t, o, nil)
	body, err := get(t, nil, s.URL)
	if err != nil || body != "peer=true" {
		t.Fatalf("open fleet: body %q, err %v; want peer=true", body, err)
	}
	if l, err := Load(""); err != nil || l.ID() != OpenID {
		t.Errorf(`Load(""): %v, %v; want the open fleet`, l, err)
	}
}

func TestPeerAuthenticatedWithoutTLS(t *testing.T) {
	a := mustFleet(t, secretA)
	if a.PeerAuthenticated(httptest.NewRequest("GET", "http://x/v1/peer/chunks", nil)) {
		t.Error("closed fleet authenticated a plain HTTP request")
	}
	r := httptest.NewRequest("GET", "https://x/v1/peer/chunks", nil) // TLS, no certificate
	if a.PeerAuthenticated(r) {
		t.Error("closed fleet authenticated a TLS request without a certificate")
	}
	b := mustFleet(t, secretB)
	leafB, _ := x509.ParseCertificate(b.cert.Certificate[0])
	r.TLS.PeerCertificates = []*x509.Certificate{leafB}
	if a.PeerAuthenticated(r) {
		t.Error("fleet A authenticated fleet B's certificate")
	}
}

func TestDeterministic(t *testing.T) {
	f1, f2 := mustFleet(t, secretA), mustFleet(t, append([]byte(" \t"), append(secretA, "\r\n"...)...))
	if f1.ID() != f2.ID() || !bytes.Equal(f1.cert.Certificate[0], f2.cert.Certificate[0]) {
		t.Fatalf("same secret, different fleets: %s vs %s", f1.ID(), f2.ID())
	}
	if b := mustFleet(t, secretB); b.ID() == f1.ID() {
		t.Fatal("different secrets, same fleet id")
	}
	// Known answer, computed independently with openssl (kdf HKDF, pkey):
	// changing the derivation splits every deployed fleet.
	if want := "1b686628c393406d"; f1.ID() != want {
		t.Errorf("fleet id of secretA = %s, want %s", f1.ID(), want)
	}
	cert, err := x509.ParseCertificate(f1.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "fleetcast fleet "+f1.ID() || cert.SerialNumber.Int64() != 1 ||
		cert.NotBefore.Year() != 2000 || cert.NotAfter.Year() != 9999 ||
		cert.KeyUsage != x509.KeyUsageDigitalSignature || len(cert.ExtKeyUsage) != 2 {
		t.Errorf("certificate fields: CN %q serial %v valid %v..%v usage %v %v",
			cert.Subject.CommonName, cert.SerialNumber, cert.NotBefore, cert.NotAfter, cert.KeyUsage, cert.ExtKeyUsage)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
}

// TestResumedConnections checks that TLS 1.3 session resumption, which skips
// the certificate exchange, neither loses nor grants peer authentication.
func TestResumedConnections(t *testing.T) {
	a := mustFleet(t, secretA)
	s := newPeerServer(t, a, a.ServerTLSOptionalClient())
	for name, tt := range map[string]struct {
		conf *tls.Config
		want string
	}{
		"fleet client": {a.ClientTLS(), "peer=true"},
		"no cert":      {&tls.Config{InsecureSkipVerify: true}, "peer=false"},
	} {
		t.Run(name, func(t *testing.T) {
			tt.conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			resumed := false
			for i := 0; i < 3; i++ {
				conn, err := tls.Dial("tcp", s.Listener.Addr().String(), tt.conf)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				resp, err := io.ReadAll(conn) // also reads the session ticket
				conn.Close()
				if err != nil || !bytes.HasSuffix(resp, []byte(tt.want)) {
					t.Fatalf("connection %d: %q, %v; want %s", i, resp, err, tt.want)
				}
				resumed = resumed || conn.ConnectionState().DidResume
			}
			if !resumed {
				t.Error("no connection was resumed: the test tests nothing")
			}
		})
	}
}
