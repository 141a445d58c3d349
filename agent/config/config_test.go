package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/manifest"
)

// minimal has the keys without a default.
const minimal = `
origin = "https://updates.example.com/fleetcast"
root = "/etc/fleetcast/root.json"

[[subscription]]
product = "myapp"
channel = "stable"
`

func skipWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the test configs use Unix absolute paths")
	}
}

func TestConfigDefaults(t *testing.T) {
	skipWindows(t)
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Origin = "https://updates.example.com/fleetcast/"
	want.Root = "/etc/fleetcast/root.json"
	want.Subscriptions = []manifest.ChannelID{{Product: "myapp", Channel: "stable"}}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
	if want.DataDir != "/var/lib/fleetcast" && runtime.GOOS == "linux" {
		t.Errorf("default data_dir %q", want.DataDir)
	}
	if err := c.Allow(manifest.Install{Installer: "command", Command: []string{"true"}}); err == nil {
		t.Error("command installer allowed by default")
	}
	if err := c.Allow(manifest.Install{Installer: "file", Target: "/opt/myapp/x"}); err == nil {
		t.Error("a file target allowed by default")
	}
}

// TestConfigDefaultMissing checks that Default lacks exactly the keys
// that have no default.
func TestConfigDefaultMissing(t *testing.T) {
	c := Default()
	err := c.Validate()
	if err == nil {
		t.Fatal("Default validated without origin, root and subscription")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: ") {
		t.Errorf("error %q does not start with config: ", msg)
	}
	for _, key := range []string{"origin", "root", "subscription"} {
		if !strings.Contains(msg, key+" ") && !strings.Contains(msg, key+":") {
			t.Errorf("error %q does not name %s", msg, key)
		}
	}
	if n := strings.Count(msg, "; ") + 1; n != 3 {
		t.Errorf("%d problems, want 3: %s", n, msg)
	}
}

func TestParseConfigEveryKey(t *testing.T) {
	skipWindows(t)
	data := `
data_dir = "/srv/fleetcast/../fc"
origin = "http://10.0.0.1:8080/mirror/"
root = "/srv/root.json"
listen = "127.0.0.1:9000"
poll_interval = "1h30m"
poll_jitter = 0.25
origin_connections = 16
request_timeout = "45s"
min_throughput = 0
throughput_window = "3s"
retries = 0
retry_backoff = "250ms"
retry_backoff_max = "1m"
allowed_installers = ["command"]
allowed_targets = ["/opt/a/", "/srv/b"]
command_timeout = "20m"
health_check_timeout = "90s"
keep_releases = 100
peers = ["198.18.0.5:7331", "[2001:db8::1]:7331"]
mdns = false
mdns_interface = "eth1"
browse_interval = "30s"
browse_interval_max = "2m"
discovery_answers = 12
peer_expiry = "5m"
fleet_secret_file = "/etc/fleetcast/fleet.secret"
peer_connections = 16
peer_requests_per_peer = 4
peer_timeout = "1m"
origin_grace = "10s"
ban_duration = "1h"
upload_rate = 10000000
download_rate = 20000000
max_uploads = 64
peer_degree = 12

[[subscription]]
product = "a"
channel = "stable"

[[subscription]]
product = "a"
channel = "beta"
`
	want := Config{
		DataDir:           "/srv/fc",
		Origin:            "http://10.0.0.1:8080/mirror/",
		Root:              "/srv/root.json",
		Listen:            "127.0.0.1:9000",
		PollInterval:      90 * time.Minute,
		PollJitter:        0.25,
		OriginConnections: 16,
		RequestTimeout:    45 * time.Second,
		MinThroughput:     0,
		ThroughputWindow:  3 * time.Second,
		Retries:           0,
		RetryBackoff:      250 * time.Millisecond,
		RetryBackoffMax:   time.Minute,
		AllowedInstallers: []string{"command"},
		AllowedTargets:    []string{"/opt/a/", "/srv/b"},
		CommandTimeout:    20 * time.Minute,
		HealthTimeout:     90 * time.Second,
		KeepReleases:      100,
		Subscriptions:     []manifest.ChannelID{{Product: "a", Channel: "stable"}, {Product: "a", Channel: "beta"}},
		PeerConfig: PeerConfig{
			Peers: []string{"198.18.0.5:7331", "[2001:db8::1]:7331"}, MDNS: false, MDNSInterface: "eth1",
			BrowseInterval: 30 * time.Second, BrowseMax: 2 * time.Minute, Answers: 12, PeerExpiry: 5 * time.Minute,
			FleetSecretFile: "/etc/fleetcast/fleet.secret", PeerConnections: 16, PerPeer: 4,
			PeerTimeout: time.Minute, OriginGrace: 10 * time.Second, BanDuration: time.Hour,
			UploadRate: 10000000, DownloadRate: 20000000, MaxUploads: 64, PeerDegree: 12,
		},
	}
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
	// Every key must be in data, with a value other than its default
	// (min_throughput and retries are set to their minimum, 0).
	def := reflect.ValueOf(Default())
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if f.Anonymous {
			continue
		}
		key := f.Tag.Get("toml")
		if !strings.Contains(data, "\n"+key+" = ") && !strings.Contains(data, "[["+key+"]]") {
			t.Errorf("key %s is not in the test config", key)
		}
		if reflect.DeepEqual(def.FieldByIndex(f.Index).Interface(), reflect.ValueOf(want).FieldByIndex(f.Index).Interface()) {
			t.Errorf("key %s is set to its default", key)
		}
	}
}

func TestParseConfigExample(t *testing.T) {
	skipWindows(t)
	c, err := Load(filepath.Join("testdata", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Subscriptions) != 2 || c.Origin != "https://updates.example.com/fleetcast/" {
		t.Errorf("got %+v", c)
	}
	// The example shows every key with its default value, except for the
	// keys without one.
	c.Origin, c.Root, c.Subscriptions, c.AllowedTargets = "", "", nil, nil
	if def := Default(); runtime.GOOS == "linux" && !reflect.DeepEqual(*c, def) {
		t.Errorf("example differs from the defaults:\ngot  %+v\nwant %+v", *c, def)
	}
}

// TestParseConfigDurations checks that BurntSushi/toml decodes duration
// strings, and that integers (which it would take as nanoseconds) are refused.
func TestParseConfigDurations(t *testing.T) {
	skipWindows(t)
	for _, tc := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{`"5m"`, 5 * time.Minute, ""},
		{`"1h2m3s"`, time.Hour + 2*time.Minute + 3*time.Second, ""},
		{`"1.5s"`, 1500 * time.Millisecond, ""},
		{`300`, 0, `poll_interval: want a duration string such as "5m", "30s" or "500ms"; got a TOML integer`},
		{`300.0`, 0, `last key "poll_interval"`},
		{`"5 minutes"`, 0, `last key "poll_interval"`},
		{`"5"`, 0, `last key "poll_interval"`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			c, err := Parse([]byte("poll_interval = " + tc.value + "\n" + minimal))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.PollInterval != tc.want {
				t.Errorf("got %v, want %v", c.PollInterval, tc.want)
			}
		})
	}
}

func TestParseConfigInvalid(t *testing.T) {
	skipWindows(t)
	const sub = "\n[[subscription]]\nproduct = \"myapp\"\nchannel = \"stable\"\n"
	const base = "origin = \"https://example.com/\"\nroot = \"/etc/root.json\"\n"
	for _, tc := range []struct {
		name, data, err string
	}{
		{"poll_interval zero", base + `poll_interval = "0s"` + sub, `config: poll_interval "0s": must be at least 1s`},
		{"poll_interval small", base + `poll_interval = "999ms"` + sub, `config: poll_interval "999ms": must be at least 1s`},
		{"poll_jitter negative", base + "poll_jitter = -0.1" + sub, "config: poll_jitter -0.1: must be between 0 and 0.5"},
		{"poll_jitter big", base + "poll_jitter = 0.6" + sub, "config: poll_jitter 0.6: must be between 0 and 0.5"},
		{"poll_jitter nan", base + "poll_jitter = nan" + sub, "config: poll_jitter NaN: must be between 0 and 0.5"},
		{"poll_jitter inf", base + "poll_jitter = inf" + sub, "config: poll_jitter +Inf: must be between 0 and 0.5"},
		{"origin_connections 0", base + "origin_connections = 0" + sub, "config: origin_connections 0: must be between 1 and 64"},
		{"origin_connections 65", base + "origin_connections = 65" + sub, "config: origin_connections 65: must be between 1 and 64"},
		{"retries negative", base + "retries = -1" + sub, "config: retries -1: must be between 0 and 20"},
		{"retries 21", base + "retries = 21" + sub, "config: retries 21: must be between 0 and 20"},
		{"keep_releases 0", base + "keep_releases = 0" + sub, "config: keep_releases 0: must be between 1 and 100"},
		{"keep_releases 101", base + "keep_releases = 101" + sub, "config: keep_releases 101: must be between 1 and 100"},
		{"min_throughput negative", base + "min_throughput = -1" + sub, "config: min_throughput -1: must be at least 0"},
		{"min_throughput string", base + `min_throughput = "32k"` + sub, `last key "min_throughput"`},
		{"request_timeout", base + `request_timeout = "0s"` + sub, `config: request_timeout "0s": must be more than 0s`},
		{"throughput_window", base + `throughput_window = "-1s"` + sub, `config: throughput_window "-1s": must be more than 0s`},
		{"retry_backoff", base + `retry_backoff = "0s"` + sub, `config: retry_backoff "0s": must be more than 0s`},
		{"retry_backoff_max", base + `retry_backoff_max = "1s"` + "\nretry_backoff = \"2s\"" + sub, `config: retry_backoff_max "1s": must be at least retry_backoff (2s)`},
		{"command_timeout", base + `command_timeout = "0s"` + sub, `config: command_timeout "0s": must be more than 0s`},
		{"health_check_timeout", base + `health_check_timeout = "0s"` + sub, `config: health_check_timeout "0s": must be more than 0s`},
		{"origin missing", `root = "/r"` + sub, `config: origin "": required`},
		{"origin ftp", `root = "/r"` + "\norigin = \"ftp://example.com/\"" + sub, `config: origin "ftp://example.com/": want an http or https URL`},
		{"origin relative", `root = "/r"` + "\norigin = \"example.com/fleetcast\"" + sub, `config: origin "example.com/fleetcast": want an http or https URL`},
		{"origin no host", `root = "/r"` + "\norigin = \"https:///x/\"" + sub, `config: origin "https:///x/": want a URL with a host`},
		{"origin userinfo", `root = "/r"` + "\norigin = \"https://u:p@example.com/\"" + sub, `config: origin "https://u:p@example.com/": must not contain a user name or password`},
		{"origin query", `root = "/r"` + "\norigin = \"https://example.com/?a=b\"" + sub, `config: origin "https://example.com/?a=b": must not have a query or fragment`},
		{"origin empty query", `root = "/r"` + "\norigin = \"https://example.com/x?\"" + sub, `must not have a query or fragment`},
		{"origin fragment", `root = "/r"` + "\norigin = \"https://example.com/#x\"" + sub, `must not have a query or fragment`},
		{"origin port", `root = "/r"` + "\norigin = \"https://example.com:x/\"" + sub, `config: origin "https://example.com:x/": not a URL`},
		{"origin space", `root = "/r"` + "\norigin = \"https://example.com/a b/\"" + sub, `config: origin "https://example.com/a b/": control characters, spaces`},
		{"root missing", `origin = "http://o/"` + sub, `config: root "": required`},
		{"root relative", `origin = "http://o/"` + "\nroot = \"root.json\"" + sub, `config: root "root.json": must be an absolute path`},
		{"root control", `origin = "http://o/"` + "\nroot = \"/r\\u0000\"" + sub, `config: root "/r\x00": control characters`},
		{"data_dir empty", base + `data_dir = ""` + sub, `config: data_dir "": required`},
		{"data_dir relative", base + `data_dir = "state"` + sub, `config: data_dir "state": must be an absolute path`},
		{"listen no port", base + `listen = "7331"` + sub, `config: listen "7331": want host:port or :port`},
		{"listen bad port", base + `listen = ":http"` + sub, `config: listen ":http": port "http": want a number from 0 to 65535`},
		{"listen big port", base + `listen = ":65536"` + sub, `config: listen ":65536": port "65536"`},
		{"allowed_installers", base + `allowed_installers = ["file", "script"]` + sub, `config: allowed_installers "script": want one of ["file" "archive" "command"]`},
		{"allowed_installers twice", base + `allowed_installers = ["file", "file"]` + sub, `config: allowed_installers "file": listed twice`},
		{"allowed_installers string", base + `allowed_installers = "file"` + sub, `last key "allowed_installers"`},
		{"allowed_targets relative", base + `allowed_targets = ["opt/x"]` + sub, `config: allowed_targets "opt/x": must be an absolute path`},
		{"allowed_targets empty string", base + `allowed_targets = [""]` + sub, `config: allowed_targets "": must be an absolute path`},
		{"no subscription", base, `config: subscription: want at least one [[subscription]] table`},
		{"empty subscription", base + "subscription = []", `config: subscription: want at least one`},
		{"subscription table", base + "[subscription]\nproduct = \"a\"\nchannel = \"b\"\n", `last key "subscription"`},
		{"product invalid", base + "[[subscription]]\nproduct = \"MyApp\"\nchannel = \"stable\"\n", `config: subscription #1 product "MyApp": want 1-64 characters`},
		{"channel missing", base + sub + "[[subscription]]\nproduct = \"myapp\"\n", `config: subscription #2 channel "": want 1-64 characters`},
		{"product reserved", base + "[[subscription]]\nproduct = \"roots\"\nchannel = \"stable\"\n", `config: subscription #1 product "roots"`},
		{"subscription duplicate", base + sub + sub, `config: subscription #2 "myapp/stable": same product and channel as subscription #1`},
		{"toml syntax", base + "retries = \n" + sub, "config: toml: line 3"},
		{"toml duplicate key", base + "retries = 1\nretries = 2\n" + sub, "config: toml: line 4"},
		{"not utf-8", base + "# \xff\n" + sub, "config: not valid UTF-8"},
		{"two problems", base + "retries = 99\nkeep_releases = 0\n" + sub, "config: retries 99: must be between 0 and 20; keep_releases 0: must be between 1 and 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.data))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got error\n\t%v\nwant one containing\n\t%s", err, tc.err)
			}
		})
	}
}

func TestParseConfigUnknownKeys(t *testing.T) {
	skipWindows(t)
	for _, tc := range []struct {
		name, data, err string
	}{
		{"top level", "pollinterval = \"1m\"\n" + minimal,
			"config: unknown key pollinterval (line 1); keys are case-sensitive"},
		{"several", "a = 1\n" + minimal + "\nb = 2\n[c]\nd = 1\n",
			"config: unknown keys a (line 1), subscription.b (line 10), c (line 11);"},
		{"case", "Poll_Interval = \"1m\"\n" + minimal,
			"config: unknown key Poll_Interval (line 1);"},
		{"case twice", "Poll_Interval = \"1m\"\npoll_interval = \"2m\"\n" + minimal,
			"config: unknown key Poll_Interval;"},
		{"dotted", "data.dir = \"/x\"\n" + minimal,
			"config: unknown key data.dir (line 1);"},
		{"quoted", "\"a b\" = 1\n" + minimal,
			`config: unknown key "a b" (line 1);`},
		{"in subscription", minimal + "version = \"1.0\"\n",
			"config: unknown key subscription.version (line 8);"},
		{"in second subscription", minimal + "[[subscription]]\nproduct = \"x\"\nchannel = \"y\"\nproducts = [\"z\"]\n",
			"config: unknown key subscription.products (line 11);"},
		{"inline subscription", "origin = \"http://o/\"\nroot = \"/r\"\nsubscription = [{product = \"a\", channel = \"b\", pin = 3}]\n",
			"config: unknown key subscription.pin"},
		{"table in subscription", minimal + "[subscription.extra]\nx = 1\n",
			"config: unknown key subscription.extra (line 8);"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got error\n\t%v\nwant one containing\n\t%s", err, tc.err)
			}
		})
	}
}

func TestParseConfigUnknownKeysMany(t *testing.T) {
	skipWindows(t)
	var b strings.Builder
	for i := range 1000 {
		b.WriteString("k" + strings.Repeat("x", i) + " = 1\n")
	}
	_, err := Parse([]byte(b.String() + minimal))
	if err == nil || !strings.Contains(err.Error(), "k (line 1), kx (line 2)") || !strings.Contains(err.Error(), ", and 980 more;") {
		t.Errorf("got %v", err)
	}
	if err != nil && len(err.Error()) > 2000 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}

func TestParseConfigSize(t *testing.T) {
	skipWindows(t)
	pad := func(n int) []byte {
		b := []byte(minimal + "#")
		b = append(b, strings.Repeat("x", n-len(b)-1)...)
		return append(b, '\n')
	}
	if _, err := Parse(pad(MaxSize)); err != nil {
		t.Errorf("%d bytes: %v", MaxSize, err)
	}
	_, err := Parse(pad(MaxSize + 1))
	if want := "config: 1048577 bytes is larger than the limit of 1048576 bytes"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	dir := t.TempDir()
	for _, n := range []int{MaxSize, MaxSize + 1, 3 * MaxSize} {
		path := filepath.Join(dir, "agent.toml")
		if err := os.WriteFile(path, pad(n), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if (err == nil) != (n <= MaxSize) {
			t.Errorf("Load of %d bytes: %v", n, err)
		}
		if err != nil && !strings.Contains(err.Error(), "larger than the limit") {
			t.Errorf("Load of %d bytes: %v", n, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	skipWindows(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, paths        string
		wantData, wantRoot string
	}{
		{"relative", "data_dir = \"state\"\nroot = \"keys/../root.json\"\n", filepath.Join(dir, "state"), filepath.Join(dir, "root.json")},
		{"dot", "data_dir = \".\"\nroot = \"./root.json\"\n", dir, filepath.Join(dir, "root.json")},
		{"absolute", "data_dir = \"/var/x/\"\nroot = \"/etc/r.json\"\n", "/var/x", "/etc/r.json"},
		{"default data_dir", "root = \"r.json\"\n", Default().DataDir, filepath.Join(dir, "r.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "agent.toml")
			data := "origin = \"http://o/\"\n" + tc.paths + "[[subscription]]\nproduct = \"a\"\nchannel = \"b\"\n"
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.DataDir != tc.wantData || c.Root != tc.wantRoot {
				t.Errorf("data_dir %q, root %q; want %q, %q", c.DataDir, c.Root, tc.wantData, tc.wantRoot)
			}
		})
	}

	// A relative path to the file itself: paths resolve against its
	// directory, not the working directory.
	sub := filepath.Join(dir, "etc")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	data := "origin = \"http://o/\"\nroot = \"root.json\"\n[[subscription]]\nproduct = \"a\"\nchannel = \"b\"\n"
	if err := os.WriteFile(filepath.Join(sub, "agent.toml"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := Load(filepath.Join("etc", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(sub, "root.json"); c.Root != want {
		t.Errorf("root %q, want %q", c.Root, want)
	}

	// Errors name the file.
	if err := os.WriteFile(filepath.Join(sub, "bad.toml"), []byte("retries = 99\n"+data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join("etc", "bad.toml"))
	if want := "config: " + filepath.Join(sub, "bad.toml") + ": retries 99: must be between 0 and 20"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("missing file: %v", err)
	}
}

// codeConfigs are configurations built in code, as agent.New may be given
// them: not normalized, some invalid. Each call builds them afresh, so that
// two calls share no slice.
func codeConfigs() map[string]Config {
	valid := func() Config {
		c := Default()
		c.Origin, c.Root, c.DataDir = "http://127.0.0.1:4000", "/tmp/x/../root.json", "/tmp/data/"
		c.AllowedTargets = []string{"/opt/a/", "/srv/../b"}
		c.Subscriptions = []manifest.ChannelID{{Product: "a", Channel: "b"}}
		c.Peers = []string{"198.18.0.5:7331"}
		return c
	}
	out := map[string]Config{"default": Default(), "not normalized": valid()}
	for name, edit := range map[string]func(*Config){
		"relative paths":  func(c *Config) { c.DataDir, c.Root = "state/", "keys/../root.json" },
		"control in path": func(c *Config) { c.Root = "/r\x00/../root.json" },
		"origin ftp":      func(c *Config) { c.Origin = "ftp://example.com" },
		"origin no host":  func(c *Config) { c.Origin = "https:///x" },
		"origin query":    func(c *Config) { c.Origin = "https://example.com/x?a" },
		"numbers":         func(c *Config) { c.Retries, c.KeepReleases, c.PollInterval = 99, 0, time.Millisecond },
		"policy":          func(c *Config) { c.AllowedInstallers, c.AllowedTargets = []string{"file", "file"}, []string{"opt/x"} },
		"subscriptions": func(c *Config) {
			c.Subscriptions = []manifest.ChannelID{{Product: "a", Channel: "b"}, {Product: "a", Channel: "b"}, {Product: "A", Channel: ""}}
		},
		"peers":             func(c *Config) { c.Peers, c.MDNSInterface = []string{"h:0", "x"}, "e\x00" },
		"peer bounds":       func(c *Config) { c.BrowseInterval, c.PeerExpiry, c.PerPeer = 50*time.Millisecond, 0, 17 },
		"expiry and browse": func(c *Config) { c.PeerExpiry = c.BrowseInterval },
	} {
		c := valid()
		edit(&c)
		out[name] = c
	}
	return out
}

// TestConfigValidateDoesNotModify: Validate only reads its Config, valid or
// not, normalized or not.
func TestConfigValidateDoesNotModify(t *testing.T) {
	skipWindows(t)
	example, err := Load(filepath.Join("testdata", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range codeConfigs() {
		t.Run(name, func(t *testing.T) {
			err := c.Validate()
			if want := codeConfigs()[name]; !reflect.DeepEqual(c, want) {
				t.Errorf("Validate (%v) changed the config:\nbefore %+v\nafter  %+v", err, want, c)
			}
		})
	}
	want := *example
	want.AllowedInstallers, want.Subscriptions = slices.Clone(want.AllowedInstallers), slices.Clone(want.Subscriptions)
	if err := example.Validate(); err != nil || !reflect.DeepEqual(*example, want) {
		t.Errorf("Validate of what Load returned: %v; config before %+v\nafter %+v", err, want, *example)
	}
}

// TestConfigNormalized: Normalized cleans data_dir and root and ends origin
// in "/", on a copy, and only when the value is valid, so that a Config and
// its normalized copy get the same answer from Validate.
func TestConfigNormalized(t *testing.T) {
	skipWindows(t)
	configs := codeConfigs()
	c := configs["not normalized"]
	n := c.Normalized()
	if n.Origin != "http://127.0.0.1:4000/" || n.Root != "/tmp/root.json" || n.DataDir != "/tmp/data" {
		t.Errorf("got origin %q, root %q, data_dir %q", n.Origin, n.Root, n.DataDir)
	}
	if !reflect.DeepEqual(c, codeConfigs()["not normalized"]) {
		t.Errorf("Normalized changed its receiver: %+v", c)
	}
	if n2 := n.Normalized(); !reflect.DeepEqual(n2, n) {
		t.Errorf("Normalized twice differs:\nonce  %+v\ntwice %+v", n, n2)
	}
	for name, c := range configs {
		t.Run(name, func(t *testing.T) {
			n := c.Normalized()
			err, nerr := c.Validate(), n.Validate()
			if fmt.Sprint(err) != fmt.Sprint(nerr) {
				t.Errorf("Validate: %v\nValidate of Normalized: %v", err, nerr)
			}
		})
	}
	for name, field := range map[string]func(Config) []string{
		"relative paths":  func(c Config) []string { return []string{c.DataDir, c.Root} },
		"control in path": func(c Config) []string { return []string{c.Root} },
		"origin ftp":      func(c Config) []string { return []string{c.Origin} },
		"origin no host":  func(c Config) []string { return []string{c.Origin} },
		"origin query":    func(c Config) []string { return []string{c.Origin} },
	} {
		c := configs[name]
		if got, want := field(c.Normalized()), field(c); !slices.Equal(got, want) {
			t.Errorf("%s: Normalized changed an invalid value: %q to %q", name, want, got)
		}
	}
}

// TestParseConfigInvalidPeers: the peer keys' bounds, which discovery does
// not check again.
func TestParseConfigInvalidPeers(t *testing.T) {
	skipWindows(t)
	for _, tc := range []struct {
		name, data, err string
	}{
		{"browse_interval zero", `browse_interval = "0s"`, `config: browse_interval "0s": must be more than 0s`},
		{"browse_interval small", `browse_interval = "99ms"`, `config: browse_interval "99ms": must be at least 100ms`},
		{"peer_expiry equal", "peer_expiry = \"10s\"", `config: peer_expiry "10s": must be more than browse_interval (10s)`},
		{"peer_expiry below browse", "browse_interval = \"20m\"\nbrowse_interval_max = \"20m\"", `config: peer_expiry "15m0s": must be more than browse_interval (20m0s)`},
		{"peer_expiry zero", `peer_expiry = "0s"`, `config: peer_expiry "0s": must be more than 0s; peer_expiry "0s": must be more than browse_interval (10s)`},
		{"browse_interval_max small", "browse_interval = \"1m\"\nbrowse_interval_max = \"30s\"", `config: browse_interval_max "30s": must be at least browse_interval (1m0s)`},
		{"browse_interval_max zero", `browse_interval_max = "0s"`, `config: browse_interval_max "0s": must be more than 0s`},
		{"discovery_answers zero", `discovery_answers = 0`, `config: discovery_answers 0: must be between 1 and 256`},
		{"discovery_answers big", `discovery_answers = 257`, `config: discovery_answers 257: must be between 1 and 256`},
		{"mdns_interface control", `mdns_interface = "eth\u0000"`, `config: mdns_interface "eth\x00": want an interface name`},
		{"mdns_interface long", `mdns_interface = "` + strings.Repeat("e", 65) + `"`, `config: mdns_interface "` + clip.String(strings.Repeat("e", 65), 64) + `": want an interface name`},
		{"peers no port", `peers = ["host"]`, `config: peers "host": want host:port`},
		{"peers no host", `peers = [":7331"]`, `config: peers ":7331": want host:port`},
		{"peers port 0", `peers = ["h:0"]`, `config: peers "h:0": port "0": want a number from 1 to 65535`},
		{"peers port big", `peers = ["h:65536"]`, `config: peers "h:65536": port "65536": want a number from 1 to 65535`},
		{"peers too many", "peers = [" + strings.Repeat(`"h:1",`, maxStaticPeers+1) + "]", `config: peers 257: at most 256 static peers`},
		{"peer_connections", "peer_connections = 0", "config: peer_connections 0: must be between 1 and 64"},
		{"peer_requests_per_peer", "peer_requests_per_peer = 17", "config: peer_requests_per_peer 17: must be between 1 and 16"},
		{"max_uploads", "max_uploads = 1025", "config: max_uploads 1025: must be between 1 and 1024"},
		{"peer_degree small", "peer_degree = 3", "config: peer_degree 3: must be between 4 and 256"},
		{"peer_degree big", "peer_degree = 257", "config: peer_degree 257: must be between 4 and 256"},
		{"upload_rate small", "upload_rate = 1000", "config: upload_rate 1000: must be 0 (unlimited) or at least 65536 bytes/s"},
		{"download_rate negative", "download_rate = -1", "config: download_rate -1: must be at least 0 bytes/s (0 means unlimited)"},
		{"peer_timeout", `peer_timeout = "0s"`, `config: peer_timeout "0s": must be more than 0s`},
		{"ban_duration", `ban_duration = "-1s"`, `config: ban_duration "-1s": must be more than 0s`},
		{"origin_grace", `origin_grace = "-1s"`, `config: origin_grace "-1s": must be at least 0s`},
		{"fleet_secret_file", `fleet_secret_file = "/s\u0001"`, `config: fleet_secret_file "/s\x01": control characters or invalid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.data + "\n" + minimal))
			if err == nil || err.Error() != tc.err {
				t.Errorf("got %v (config %+v)\nwant %s", err, c, tc.err)
			}
		})
	}
}

func TestConfigAllow(t *testing.T) {
	skipWindows(t)
	dir := t.TempDir()
	outside := t.TempDir()
	app := filepath.Join(dir, "myapp")
	for _, d := range []string{app, filepath.Join(app, "bin"), filepath.Join(dir, "myapp2")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(app, "escape"):      outside,                               // a directory outside
		filepath.Join(app, "passwd"):      filepath.Join(outside, "passwd"),      // a file outside
		filepath.Join(app, "dangling"):    filepath.Join(app, "missing"),         // dangling, but inside
		filepath.Join(app, "current"):     filepath.Join(app, "bin"),             // inside
		filepath.Join(app, "relative"):    "../myapp2",                           // relative, outside
		filepath.Join(dir, "alias"):       app,                                   // an allowed prefix through a link
		filepath.Join(app, "bin", "loop"): filepath.Join(app, "bin", "loop"),     // a loop
		filepath.Join(app, "updir"):       filepath.Join(app, "bin", "..", ".."), // dir, outside
	}
	if err := os.WriteFile(filepath.Join(outside, "passwd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range links {
		if err := os.Symlink(to, link); err != nil {
			t.Skipf("symlink: %v", err)
		}
	}
	c := Default()
	c.AllowedTargets = []string{app + "/", filepath.Join(dir, "alias")}
	c.AllowedInstallers = []string{"file", "archive", "command"}

	for _, tc := range []struct {
		name   string
		in     manifest.Install
		policy func(*Config)
		err    string // "" for allowed
	}{
		{"file under", manifest.Install{Installer: "file", Target: app + "/bin/x"}, nil, ""},
		{"archive prefix itself", manifest.Install{Installer: "archive", Target: app}, nil, ""},
		{"prefix with slash", manifest.Install{Installer: "file", Target: app + "/"}, nil, ""},
		{"missing dirs", manifest.Install{Installer: "file", Target: app + "/new/dir/x"}, nil, ""},
		{"link inside", manifest.Install{Installer: "file", Target: app + "/current/x"}, nil, ""},
		{"through allowed alias", manifest.Install{Installer: "file", Target: dir + "/alias/bin/x"}, nil, ""},
		{"sibling with common prefix", manifest.Install{Installer: "file", Target: dir + "/myapp2/x"}, nil,
			`is not under any allowed_targets prefix`},
		{"dot dot", manifest.Install{Installer: "file", Target: app + "/../myapp2/x"}, nil,
			`target "` + dir + `/myapp2/x" is not under any allowed_targets prefix`},
		{"outside", manifest.Install{Installer: "file", Target: "/etc/passwd"}, nil,
			`target "/etc/passwd" is not under any allowed_targets prefix ["` + app + `/" "` + dir + `/alias"]; not installed`},
		{"relative", manifest.Install{Installer: "file", Target: "myapp/x"}, nil,
			`target "myapp/x" is not an absolute path; not installed`},
		{"no target", manifest.Install{Installer: "archive"}, nil, `target "" is not an absolute path`},
		{"symlink escape dir", manifest.Install{Installer: "file", Target: app + "/escape/x"}, nil,
			`target "` + app + `/escape/x" resolves through a symbolic link to "` + outside + `/x", which is not under any allowed_targets prefix`},
		{"symlink escape file", manifest.Install{Installer: "file", Target: app + "/passwd"}, nil,
			`resolves through a symbolic link to "` + outside + `/passwd"`},
		{"symlink escape relative", manifest.Install{Installer: "archive", Target: app + "/relative/x"}, nil,
			`resolves through a symbolic link to "` + dir + `/myapp2/x"`},
		{"symlink escape updir", manifest.Install{Installer: "archive", Target: app + "/updir/myapp2"}, nil,
			`resolves through a symbolic link to "` + dir + `/myapp2"`},
		{"dangling link", manifest.Install{Installer: "file", Target: app + "/dangling"}, nil,
			`is a symbolic link to a missing file; not installed`},
		{"link loop", manifest.Install{Installer: "file", Target: app + "/bin/loop/x"}, nil,
			`resolving symbolic links`},
		{"command without target", manifest.Install{Installer: "command", Command: []string{"/bin/true"}}, nil, ""},
		{"command with target", manifest.Install{Installer: "command", Target: "/etc/x", Command: []string{"/bin/true"}}, nil,
			`target "/etc/x" is not under any allowed_targets prefix`},
		{"command not allowed", manifest.Install{Installer: "command", Command: []string{"/bin/true"}},
			func(c *Config) { c.AllowedInstallers = []string{"file", "archive"} },
			`installer "command" is not in allowed_installers ["file" "archive"]; not installed`},
		{"unknown installer", manifest.Install{Installer: "msi", Target: app}, nil,
			`installer "msi" is not in allowed_installers`},
		{"no targets", manifest.Install{Installer: "file", Target: "/opt/myapp/x"},
			func(c *Config) { c.AllowedTargets = nil },
			`target "/opt/myapp/x" is not under any allowed_targets prefix [] (allowed_targets is empty, so no target is allowed); not installed`},
		{"root prefix", manifest.Install{Installer: "file", Target: "/opt/x"},
			func(c *Config) { c.AllowedTargets = []string{"/"} }, ""},
		{"not under missing prefix", manifest.Install{Installer: "file", Target: "/opt/myapp2/x"},
			func(c *Config) { c.AllowedTargets = []string{"/opt/myapp/"} },
			`target "/opt/myapp2/x" is not under any allowed_targets prefix ["/opt/myapp/"]; not installed`},
		{"under missing prefix", manifest.Install{Installer: "file", Target: "/nonexistent-fleetcast/myapp/x"},
			func(c *Config) { c.AllowedTargets = []string{"/nonexistent-fleetcast/myapp"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			c.AllowedTargets = slices.Clone(c.AllowedTargets)
			if tc.policy != nil {
				tc.policy(&c)
			}
			err := c.Allow(tc.in)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Errorf("allowed, want error containing %q", tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Errorf("got error\n\t%v\nwant one containing\n\t%s", err, tc.err)
			}
		})
	}
}

// TestParseConfigLargeInputs logs how long inputs near MaxSize take
// (at most about 2 s without -race).
func TestParseConfigLargeInputs(t *testing.T) {
	skipWindows(t)
	if testing.Short() {
		t.Skip("slow")
	}
	fill := func(unit string) []byte {
		return []byte(strings.Repeat(unit, (MaxSize-len(minimal))/len(unit)) + minimal)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"unknown keys", numbered("k%d=1\n")},
		{"dotted key", []byte("x" + strings.Repeat(".a", MaxSize/2-100) + " = 1\n" + minimal)},
		{"dotted keys", numbered("a.b.c.d%d=1\n")},
		{"tables", numbered("[t%d]\n")},
		{"deep inline tables", []byte("x = " + strings.Repeat("{a=", 100000) + "1" + strings.Repeat("}", 100000) + "\n" + minimal)},
		{"subscriptions", fill("[[subscription]]\nproduct=\"a\"\nchannel=\"b\"\n")},
		{"targets", []byte("allowed_targets = [" + strings.Repeat("\"/a\",", MaxSize/5-100) + "]\n" + minimal)},
		{"nested arrays", []byte("x = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n" + minimal)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse(tc.data)
			t.Logf("%d bytes in %v: %.200v", len(tc.data), time.Since(start), err)
		})
	}
}

// numbered repeats format with 0, 1, 2, ... up to about MaxSize.
func numbered(format string) []byte {
	var b []byte
	for i := 0; len(b) < MaxSize-len(minimal)-100; i++ {
		b = fmt.Appendf(b, format, i)
	}
	return append(b, minimal...)
}

func TestConfigCheckShape(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		ok         bool
	}{
		{"example", minimal + "poll_jitter = 0.1\n[[subscription]]\nproduct = \"a.b\"\nchannel = \"c\"\n", true},
		{"dots in strings", "a = \"" + strings.Repeat(".", 100) + "\"\nb = '" + strings.Repeat(".", 100) + "'\n", true},
		{"dots in multi-line strings", "a = \"\"\"\n" + strings.Repeat(".\n", 100) + "\"\"\"\nb = '''\n" + strings.Repeat(".\n", 100) + "'''\n", true},
		{"escaped quote", "a = \"\\\"" + strings.Repeat(".", 100) + "\"\n", true},
		{"dots in comments", "# " + strings.Repeat(".", 100) + "\na = 1 # " + strings.Repeat(".", 100), true},
		{"brackets in strings", "a = \"" + strings.Repeat("[{", 100) + "\"\n", true},
		{"nested 16", "a = " + strings.Repeat("[", 16) + strings.Repeat("]", 16), true},
		{"many shallow arrays", strings.Repeat("a = [[1], [2]]\n", 1000), true},
		{"64 dots", "a" + strings.Repeat(".a", 64) + " = 1", true},
		{"65 dots", "a" + strings.Repeat(".a", 65) + " = 1", false},
		{"dots after string", "a = \"x\"" + strings.Repeat(".", 65), false},
		{"dots after literal string", "a = 'x'" + strings.Repeat(".", 65), false},
		{"dots after multi-line string", "a = \"\"\"x\"\"\"" + strings.Repeat(".", 65), false},
		{"dots after comment", "# x\n" + strings.Repeat(".", 65), false},
		{"nested 17", "a = " + strings.Repeat("[", 17) + strings.Repeat("]", 17), false},
		{"inline tables 17", "a = " + strings.Repeat("{a=", 17), false},
		{"unbalanced", strings.Repeat("]", 100) + strings.Repeat("[", 17), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkShape([]byte(tc.data)); (err == nil) != tc.ok {
				t.Errorf("got %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestConfigDocExample keeps the example in docs/CONFIG.md equal to
// testdata/agent.toml.
func TestConfigDocExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```toml\n"+string(example)+"```\n") {
		t.Error("docs/CONFIG.md does not show testdata/agent.toml as its example")
	}
}

func TestParseConfigWindowsText(t *testing.T) {
	skipWindows(t)
	want, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("\ufeff" + strings.ReplaceAll(minimal, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

// TestBrowseBackoffMax: browses back off to browse_interval_max, or to half
// of peer_expiry when that is less (configurations from before
// browse_interval_max), and never below browse_interval.
func TestBrowseBackoffMax(t *testing.T) {
	for _, tc := range []struct {
		interval, max, expiry, want time.Duration
	}{
		{10 * time.Second, 5 * time.Minute, 15 * time.Minute, 5 * time.Minute},
		{10 * time.Second, 5 * time.Minute, time.Minute, 30 * time.Second},
		{10 * time.Second, 5 * time.Minute, 15 * time.Second, 10 * time.Second},
	} {
		c := PeerConfig{BrowseInterval: tc.interval, BrowseMax: tc.max, PeerExpiry: tc.expiry}
		if got := c.BrowseBackoffMax(); got != tc.want {
			t.Errorf("browse_interval %s, browse_interval_max %s, peer_expiry %s: backoff to %s, want %s",
				tc.interval, tc.max, tc.expiry, got, tc.want)
		}
	}
}
