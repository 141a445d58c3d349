// Package config is the agent's configuration (docs/CONFIG.md): Config, its
// Default, the strict TOML decoding of Load and Parse, Validate, which names
// every bad key, and the local install policy (Allow, Warnings).
//
// Load and Parse turn a file into a Config in one pass: decoded over
// Default, normalized (Normalized), validated once. Validate only reads its
// Config; a Config built in code is normalized and validated by whoever
// takes it (agent.New).
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fleetcast/fleetcast/internal/boundedfile"
	"github.com/fleetcast/fleetcast/internal/clip"

	"github.com/fleetcast/fleetcast/manifest"
)

// MaxSize bounds the configuration file.
const MaxSize = 1 << 20

// Config is the agent's configuration (TOML, docs/CONFIG.md).
type Config struct {
	DataDir           string               `toml:"data_dir"`             // default per OS (defaultDataDir); made absolute
	Origin            string               `toml:"origin"`               // required; http or https URL of the origin mirror directory; ends in "/"
	Root              string               `toml:"root"`                 // required; path of the pinned initial trust root envelope file
	Listen            string               `toml:"listen"`               // default ":7331"; "" disables the status/peer API
	PollInterval      time.Duration        `toml:"poll_interval"`        // default 5m; minimum 1s
	PollJitter        float64              `toml:"poll_jitter"`          // default 0.1 (±10%); 0..0.5
	OriginConnections int                  `toml:"origin_connections"`   // parallel chunk requests to the origin; default 4; 1..64
	RequestTimeout    time.Duration        `toml:"request_timeout"`      // whole-request timeout for one manifest/root/chunk request; default 2m
	MinThroughput     int64                `toml:"min_throughput"`       // bytes/s a response body must sustain over ThroughputWindow; default 32768; 0 disables
	ThroughputWindow  time.Duration        `toml:"throughput_window"`    // default 10s
	Retries           int                  `toml:"retries"`              // retries per request after the first attempt; default 4; 0..20
	RetryBackoff      time.Duration        `toml:"retry_backoff"`        // first backoff, doubled each retry with full jitter; default 500ms
	RetryBackoffMax   time.Duration        `toml:"retry_backoff_max"`    // cap of the backoff; default 30s
	AllowedInstallers []string             `toml:"allowed_installers"`   // default ["file", "archive"]; values from manifest.Installers
	AllowedTargets    []string             `toml:"allowed_targets"`      // absolute path prefixes; default none
	CommandTimeout    time.Duration        `toml:"command_timeout"`      // default 10m
	HealthTimeout     time.Duration        `toml:"health_check_timeout"` // default 1m
	KeepReleases      int                  `toml:"keep_releases"`        // archive installer; default 3; 1..100
	Subscriptions     []manifest.ChannelID `toml:"subscription"`         // at least one ([[subscription]] tables); names manifest.ValidName
	PeerConfig
}

// Default returns the configuration that a file's keys are applied
// over. Origin, Root and Subscriptions have no default.
func Default() Config {
	return Config{
		DataDir:           defaultDataDir(),
		Listen:            ":7331",
		PollInterval:      5 * time.Minute,
		PollJitter:        0.1,
		OriginConnections: 4,
		RequestTimeout:    2 * time.Minute,
		MinThroughput:     32 << 10,
		ThroughputWindow:  10 * time.Second,
		Retries:           4,
		RetryBackoff:      500 * time.Millisecond,
		RetryBackoffMax:   30 * time.Second,
		AllowedInstallers: []string{manifest.InstallerFile, manifest.InstallerArchive},
		CommandTimeout:    10 * time.Minute,
		HealthTimeout:     time.Minute,
		KeepReleases:      3,
		PeerConfig:        defaultPeerConfig(),
	}
}

// defaultDataDir is the per-OS default of data_dir. It is a switch
// rather than per-OS files because it is the configuration's one per-OS
// value.
func defaultDataDir() string {
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("ProgramData"); filepath.IsAbs(d) {
			return filepath.Join(d, "fleetcast")
		}
		return `C:\ProgramData\fleetcast`
	case "darwin":
		return "/Library/Application Support/fleetcast"
	}
	return "/var/lib/fleetcast"
}

// Parse decodes a TOML configuration over Default, normalizes it and
// validates it. Unknown keys are an error, as is a relative data_dir or root
// (only Load knows what they are relative to).
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

// Load reads the configuration file at path and parses it like
// Parse, except that a relative data_dir or root is taken relative to
// the directory of the file.
func Load(path string) (*Config, error) {
	// Without blocking: a named pipe must be refused, not waited on for ever.
	data, err := boundedfile.Read(path, MaxSize)
	if errors.Is(err, boundedfile.ErrNotRegular) {
		return nil, fmt.Errorf("config: %w: give the path of the TOML file", err)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, abs)
}

// parse is Parse, or Load's parsing of the file at the
// absolute path file. It is where a configuration file becomes a Config:
// decoded over Default, its relative paths resolved against the file's
// directory, normalized (Normalized), then checked, once (check); what it
// returns is what it checked.
func parse(data []byte, file string) (*Config, error) {
	c, err := decode(data)
	if err == nil {
		if file != "" {
			c.DataDir = relativeTo(filepath.Dir(file), c.DataDir)
			c.Root = relativeTo(filepath.Dir(file), c.Root)
		}
		*c = c.Normalized()
		err = c.check()
	}
	switch {
	case err == nil:
		return c, nil
	case file != "":
		return nil, fmt.Errorf("config: %s: %w", file, err)
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
}

func relativeTo(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// Normalized returns a copy of c in the form that Parse and Load return:
// data_dir and root cleaned (filepath.Clean), origin ending in "/". It
// changes only values that Validate accepts, into values it accepts, so c and
// its copy pass or fail Validate alike, with the same message. The copy
// shares c's slices.
func (c Config) Normalized() Config {
	for _, p := range []*string{&c.DataDir, &c.Root} {
		if passes(func(add adder) { checkPath("", *p, add) }) {
			*p = filepath.Clean(*p)
		}
	}
	if !strings.HasSuffix(c.Origin, "/") && passes(func(add adder) { checkOrigin(c.Origin, add) }) {
		c.Origin += "/"
	}
	return c
}

// Validate checks every field of c and reports every problem in one error
// that names each bad key and its value:
// `config: poll_interval "0s": must be at least 1s; retries 21: must be
// between 0 and 20`. It only reads c: Normalized is what changes a Config.
// Parse and Load have run it on what they return.
func (c *Config) Validate() error {
	if err := c.check(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// check is Validate without the "config: " prefix; it reports every
// problem, separated by "; ".
func (c *Config) check() error {
	var bad []string
	add := func(key string, value any, format string, args ...any) {
		switch v := value.(type) {
		case nil:
			key += ":"
		case string:
			key += " " + strconv.Quote(clip.String(v, 64)) + ":"
		default:
			key += fmt.Sprintf(" %v:", v)
		}
		bad = append(bad, key+" "+fmt.Sprintf(format, args...))
	}
	c.checkPaths(add)
	checkOrigin(c.Origin, add)
	c.checkNumbers(add)
	c.checkPolicy(add)
	c.checkSubscriptions(add)
	c.checkPeers(add)
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// adder records a problem: the key, its value (nil for none), what is
// wrong.
type adder func(key string, value any, format string, args ...any)

// passes reports whether check finds no problem.
func passes(check func(adder)) bool {
	ok := true
	check(func(string, any, string, ...any) { ok = false })
	return ok
}

func (c *Config) checkPaths(add adder) {
	checkPath("data_dir", c.DataDir, add)
	checkPath("root", c.Root, add)
	if c.Listen != "" {
		_, port, err := net.SplitHostPort(c.Listen)
		if err != nil || !validText(c.Listen) {
			add("listen", c.Listen, "want host:port or :port, or \"\" to disable the status and peer API")
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			add("listen", c.Listen, "port %q: want a number from 0 to 65535", clip.String(port, 64))
		}
	}
}

// checkPath checks the value of data_dir or root, the key.
func checkPath(key, value string, add adder) {
	switch {
	case value == "":
		add(key, value, "required")
	case !validText(value):
		add(key, value, "control characters or invalid UTF-8")
	case !filepath.IsAbs(value):
		add(key, value, "must be an absolute path (a relative one is allowed in a config file, relative to the file)")
	}
}

// checkOrigin checks the value of origin. One without a final "/" passes:
// Normalized adds it.
func checkOrigin(origin string, add adder) {
	if origin == "" {
		add("origin", origin, "required: the http or https URL of the origin mirror")
		return
	}
	u, err := url.Parse(origin)
	switch {
	case !validText(origin) || strings.ContainsFunc(origin, unicode.IsSpace):
		add("origin", origin, "control characters, spaces or invalid UTF-8")
	case err != nil:
		add("origin", origin, "not a URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		add("origin", origin, "want an http or https URL")
	case u.Opaque != "" || u.Hostname() == "":
		add("origin", origin, "want a URL with a host, such as https://updates.example.com/fleetcast/")
	case u.User != nil:
		add("origin", origin, "must not contain a user name or password")
	case strings.ContainsAny(origin, "?#"):
		add("origin", origin, "must not have a query or fragment")
	}
}

func (c *Config) checkNumbers(add adder) {
	if c.PollInterval < time.Second {
		add("poll_interval", c.PollInterval.String(), "must be at least 1s")
	}
	if !(c.PollJitter >= 0 && c.PollJitter <= 0.5) { // also refuses NaN
		add("poll_jitter", c.PollJitter, "must be between 0 and 0.5")
	}
	checkRange(add, "origin_connections", c.OriginConnections, 1, 64)
	checkRange(add, "retries", c.Retries, 0, 20)
	checkRange(add, "keep_releases", c.KeepReleases, 1, 100)
	if c.MinThroughput < 0 {
		add("min_throughput", c.MinThroughput, "must be at least 0 (0 disables the check)")
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"request_timeout", c.RequestTimeout},
		{"throughput_window", c.ThroughputWindow},
		{"retry_backoff", c.RetryBackoff},
		{"retry_backoff_max", c.RetryBackoffMax},
		{"command_timeout", c.CommandTimeout},
		{"health_check_timeout", c.HealthTimeout},
	} {
		if d.value <= 0 {
			add(d.key, d.value.String(), "must be more than 0s")
		}
	}
	if c.RetryBackoff > 0 && c.RetryBackoffMax < c.RetryBackoff {
		add("retry_backoff_max", c.RetryBackoffMax.String(), "must be at least retry_backoff (%s)", c.RetryBackoff)
	}
}

func checkRange(add adder, key string, v, lo, hi int) {
	if v < lo || v > hi {
		add(key, v, "must be between %d and %d", lo, hi)
	}
}

func (c *Config) checkPolicy(add adder) {
	for i, name := range c.AllowedInstallers {
		switch {
		case !slices.Contains(manifest.Installers, name):
			add("allowed_installers", name, "want one of %q", manifest.Installers)
		case slices.Contains(c.AllowedInstallers[:i], name):
			add("allowed_installers", name, "listed twice")
		}
	}
	for _, p := range c.AllowedTargets {
		switch {
		case !validText(p):
			add("allowed_targets", p, "control characters or invalid UTF-8")
		case !filepath.IsAbs(p):
			add("allowed_targets", p, "must be an absolute path")
		}
	}
}

func (c *Config) checkSubscriptions(add adder) {
	if len(c.Subscriptions) == 0 {
		add("subscription", nil, "want at least one [[subscription]] table with product and channel")
	}
	for i, s := range c.Subscriptions {
		key := "subscription #" + strconv.Itoa(i+1)
		if !manifest.ValidName(s.Product) {
			add(key+" product", s.Product, "want %s", manifest.NameRule)
		}
		if !manifest.ValidName(s.Channel) {
			add(key+" channel", s.Channel, "want %s", manifest.NameRule)
		}
		if j := slices.Index(c.Subscriptions[:i], s); j >= 0 {
			add(key, s.Product+"/"+s.Channel, "same product and channel as subscription #%d", j+1)
		}
	}
}

// Warnings lists what the configuration allows that an operator may not
// mean to: an allowed_targets prefix that is a file system root or a
// system-wide directory. `fleetcast agent` logs them at start
// (agent.NewFromFile).
func (c *Config) Warnings() []string {
	var out []string
	for _, p := range c.AllowedTargets {
		if what := systemDir(p); what != "" {
			out = append(out, fmt.Sprintf("allowed_targets %q lets any release signed by the root's keys replace %s; allow only the directories releases install into, such as /opt/myapp/",
				clip.String(p, 64), what))
		}
	}
	return out
}

// systemDirs are system-wide directories, and what a release
// installed under them can change.
var systemDirs = map[string]string{
	"/bin":      "the system's programs",
	"/sbin":     "the system's programs",
	"/usr/bin":  "the system's programs",
	"/usr/sbin": "the system's programs",
	"/usr":      "the system's programs and libraries",
	"/lib":      "the system's libraries, which every program loads",
	"/lib64":    "the system's libraries, which every program loads",
	"/usr/lib":  "the system's libraries, which every program loads",
	"/etc":      "the system's configuration (accounts, sudoers, services)",
	"/boot":     "the kernel and the boot loader",
	"/var":      "the system's state (package databases, spools, logs) and data directories such as this agent's own",
	"/root":     "the administrator's home directory (shell profile, SSH keys)",
}

// systemDir says what an allowed_targets prefix lets a release
// replace when it is a file system root or a system-wide directory; "" for
// any other prefix.
func systemDir(prefix string) string {
	if !filepath.IsAbs(prefix) {
		return ""
	}
	p := filepath.Clean(prefix)
	switch {
	case filepath.Dir(p) == p:
		return "any file on this machine"
	case runtime.GOOS == "windows":
		if strings.EqualFold(p[len(filepath.VolumeName(p)):], `\Windows`) {
			return "the Windows system files"
		}
		return ""
	}
	return systemDirs[p]
}

// validText reports whether s is valid UTF-8 without control characters.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// Allow reports whether the local policy accepts a manifest's install
// instructions. The installer must be in AllowedInstallers. A file or
// archive target, or a command's target if it has one, must be absolute and
// under an AllowedTargets prefix both as written and with the symbolic links
// of its longest existing ancestor resolved, so that a link inside an
// allowed directory cannot lead the install elsewhere. A health check runs
// a program of the manifest's choosing after any installer, so it needs
// "command" in AllowedInstallers too (a rollback command runs only with the
// command installer). The error says which key to change. Allow checks the
// file system as it is now: installers must still not follow links they did
// not expect.
func (c *Config) Allow(in manifest.Install) error {
	if !slices.Contains(c.AllowedInstallers, in.Installer) {
		return fmt.Errorf("installer %q is not in allowed_installers %q; not installed", clip.String(in.Installer, 64), c.AllowedInstallers)
	}
	if len(in.HealthCheck) > 0 && !slices.Contains(c.AllowedInstallers, manifest.InstallerCommand) {
		return fmt.Errorf("the release asks to run health check %q; this agent does not allow commands (add \"command\" to allowed_installers); not installed",
			clip.String(strings.Join(in.HealthCheck, " "), 64))
	}
	if in.Installer == manifest.InstallerCommand && in.Target == "" {
		return nil
	}
	return c.allowTarget(in.Target)
}

func (c *Config) allowTarget(target string) error {
	if !filepath.IsAbs(target) {
		return fmt.Errorf("target %q is not an absolute path; not installed", clip.String(target, 64))
	}
	hint := ""
	if len(c.AllowedTargets) == 0 {
		hint = " (allowed_targets is empty, so no target is allowed)"
	}
	target = filepath.Clean(target)
	if !c.underTargets(target, false) {
		return fmt.Errorf("target %q is not under any allowed_targets prefix %q%s; not installed", clip.String(target, 64), c.AllowedTargets, hint)
	}
	real, err := resolveLinks(target)
	if err != nil {
		return fmt.Errorf("target %q: resolving symbolic links: %w; not installed", clip.String(target, 64), err)
	}
	if !c.underTargets(real, true) {
		return fmt.Errorf("target %q resolves through a symbolic link to %q, which is not under any allowed_targets prefix %q; not installed",
			clip.String(target, 64), clip.String(real, 64), c.AllowedTargets)
	}
	return nil
}

// underTargets reports whether path is an AllowedTargets prefix or
// below one on a path component boundary, comparing with the prefixes'
// symbolic links resolved if resolve is set.
func (c *Config) underTargets(path string, resolve bool) bool {
	for _, prefix := range c.AllowedTargets {
		if !filepath.IsAbs(prefix) {
			continue
		}
		prefix = filepath.Clean(prefix)
		if resolve {
			r, err := resolveLinks(prefix)
			if err != nil {
				continue
			}
			prefix = r
		}
		if path == prefix || strings.HasPrefix(path, prefix) &&
			(strings.HasSuffix(prefix, string(filepath.Separator)) || path[len(prefix)] == filepath.Separator) {
			return true
		}
	}
	return false
}

// resolveLinks resolves the symbolic links of the longest existing ancestor
// of the clean absolute path p and appends the rest of p. A dangling link on
// the way is an error: what it points to could be created later.
func resolveLinks(p string) (string, error) {
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if _, lerr := os.Lstat(p); lerr == nil {
			return "", fmt.Errorf("%s is a symbolic link to a missing file", p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
