// Package manifest defines the signed release manifest: what a release is
// (product, channel, sequence, artifact, chunks, install instructions), how it
// is encoded inside a DSSE envelope, and the one verification function that
// both `fleetcast verify` and the agent use. The format is specified in
// docs/SPEC.md ("Manifest").
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode"

	"github.com/fleetcast/fleetcast/internal/clip"
	"github.com/fleetcast/fleetcast/internal/strictjson"
	"github.com/fleetcast/fleetcast/signing"
)

// PayloadType is the DSSE payload type of a release manifest.
const PayloadType = "application/vnd.fleetcast.manifest.v1+json"

var (
	// ErrExpired: the manifest's expiry time has passed.
	ErrExpired = errors.New("manifest expired")
	// ErrInvalid: a signed manifest breaks a rule of the format.
	ErrInvalid = errors.New("invalid manifest")
	// ErrMismatch: an artifact or chunk does not match the manifest.
	ErrMismatch = errors.New("does not match the manifest")
	// ErrRollback: a manifest is not newer than one already trusted.
	ErrRollback = errors.New("possible rollback attack")
)

// CheckSequence refuses a manifest whose sequence is not greater than the
// highest sequence already trusted for its product and channel.
func CheckSequence(m *Manifest, trusted uint64) error {
	if m.Sequence <= trusted {
		return fmt.Errorf("manifest %s/%s sequence %d is not newer than trusted sequence %d: %w; not installed",
			m.Product, m.Channel, m.Sequence, trusted, ErrRollback)
	}
	return nil
}

// Installer names accepted in Install.Installer.
var Installers = []string{InstallerFile, InstallerArchive, InstallerCommand}

// The installers a manifest may name (docs/INSTALLERS.md).
const (
	InstallerFile    = "file"    // the artifact replaces one file
	InstallerArchive = "archive" // the artifact is unpacked, and a current link switched to it
	InstallerCommand = "command" // a command of the manifest's installs it
)

// namePattern restricts product and channel names: they are path
// components on the origin mirror.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// versionPattern restricts the human version string to what is safe to
// show and to use in file names.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$`)

var modePattern = regexp.MustCompile(`^0[0-7]{3,4}$`)

// ValidVersion reports whether s may be a release version string.
func ValidVersion(s string) bool { return versionPattern.MatchString(s) }

// ValidName reports whether s may be a product or channel name.
func ValidName(s string) bool { return namePattern.MatchString(s) && s != "roots" && s != "chunks" }

// NameRule says what ValidName accepts, for messages that refuse a name:
// every rule, so that an operator can fix the name in one try.
const NameRule = "1-64 characters of a-z 0-9 . _ -, starting with a letter or digit, and not roots or chunks (reserved by the origin's layout)"

// CheckName returns nil when s may be a product or channel name, else an
// error that names what s is (say "product" or "--channel"), s, and NameRule.
func CheckName(what, s string) error {
	if ValidName(s) {
		return nil
	}
	return fmt.Errorf("%s %q: want %s", what, clip.String(s, 64), NameRule)
}

// Encode returns the manifest payload bytes (indented JSON) after checking m.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := *m
	c.Created, c.Expires = m.Created.UTC(), m.Expires.UTC()
	if c.Chunks == nil {
		c.Chunks = []Chunk{} // an empty artifact: [] not null, which parsers refuse
	}
	b, err := json.MarshalIndent(&c, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Decode parses a manifest payload strictly and checks it, without any
// signature check: use Verify for anything that will be trusted.
func Decode(payload []byte) (*Manifest, error) {
	if len(payload) > signing.MaxEnvelopeSize {
		return nil, fmt.Errorf("manifest: %w: %d bytes", signing.ErrTooLarge, len(payload))
	}
	var m Manifest
	if err := strictjson.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w: %v", signing.ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the manifest's internal consistency and limits.
func (m *Manifest) Validate() error {
	if err := m.validateLimits(); err != nil {
		return fmt.Errorf("manifest: %w: %w: %w", ErrInvalid, signing.ErrTooLarge, err)
	}
	if err := m.validateHeader(); err != nil {
		return fmt.Errorf("manifest: %w: %w", ErrInvalid, err)
	}
	if err := m.validateChunks(); err != nil {
		return fmt.Errorf("manifest: %w: %w", ErrInvalid, err)
	}
	if err := m.Install.Validate(); err != nil {
		return fmt.Errorf("manifest: %w: %w", ErrInvalid, err)
	}
	return nil
}

// validateLimits checks the counts and lengths bounded by named limits; they
// are judged before the form of the fields (docs/SPEC.md, "Error classes").
func (m *Manifest) validateLimits() error {
	if len(m.Chunks) > MaxChunks {
		return fmt.Errorf("%d chunks, limit %d", len(m.Chunks), MaxChunks)
	}
	in := &m.Install
	if len(in.Target) > MaxInstallArgLen {
		return fmt.Errorf("target longer than %d bytes", MaxInstallArgLen)
	}
	for _, argv := range [][]string{in.Command, in.HealthCheck, in.RollbackCommand} {
		if len(argv) > MaxInstallArgs {
			return fmt.Errorf("command with %d arguments, limit %d", len(argv), MaxInstallArgs)
		}
		for _, arg := range argv {
			if len(arg) > MaxInstallArgLen {
				return fmt.Errorf("command argument longer than %d bytes", MaxInstallArgLen)
			}
		}
	}
	return nil
}

func (m *Manifest) validateHeader() error {
	switch {
	case !ValidName(m.Product):
		return CheckName("product", m.Product)
	case !ValidName(m.Channel):
		return CheckName("channel", m.Channel)
	case m.Sequence == 0:
		return errors.New("sequence must be at least 1")
	case !versionPattern.MatchString(m.Version):
		return fmt.Errorf("version %q: want 1-128 characters of A-Z a-z 0-9 . _ + ~ -", clip.String(m.Version, 64))
	case m.Created.IsZero() || m.Expires.IsZero() || !m.Expires.After(m.Created):
		return errors.New("created and expires must be set, expires after created")
	case !encodableTime(m.Created) || !encodableTime(m.Expires):
		// Encode writes times in UTC, and JSON times have 4-digit years: an
		// offset can push a decodable time out of range.
		return errors.New("created and expires must fall in the years 0000 to 9999 UTC")
	case !versionPattern.MatchString(m.Artifact.Name):
		return fmt.Errorf("artifact name %q: want a file name of 1-128 characters of A-Z a-z 0-9 . _ + ~ -", clip.String(m.Artifact.Name, 64))
	}
	return nil
}

func encodableTime(t time.Time) bool {
	y := t.UTC().Year()
	return 0 <= y && y <= 9999
}

func (m *Manifest) validateChunks() error {
	if m.Chunking.Max <= 0 || m.Chunking.Max > MaxChunkSize || m.Chunking.Algorithm == "" {
		return fmt.Errorf("chunking: algorithm must be named and 0 < max <= %d", MaxChunkSize)
	}
	var total int64
	for i, c := range m.Chunks {
		if c.Size <= 0 || c.Size > int64(m.Chunking.Max) {
			return fmt.Errorf("chunk %d: size %d outside 1..%d", i, c.Size, m.Chunking.Max)
		}
		total += c.Size
	}
	if total != m.Artifact.Size {
		return fmt.Errorf("chunk sizes add up to %d bytes, artifact size is %d", total, m.Artifact.Size)
	}
	return nil
}

// Validate checks the install instructions' shape. Whether an agent allows
// them is its local configuration's decision.
func (in *Install) Validate() error {
	switch in.Installer {
	case InstallerFile, InstallerArchive:
		if in.Target == "" {
			return fmt.Errorf("installer %q needs a target", in.Installer)
		}
	case InstallerCommand:
		if len(in.Command) == 0 {
			return errors.New(`installer "command" needs a command`)
		}
	default:
		return fmt.Errorf("installer %q: want one of %v", clip.String(in.Installer, 64), Installers)
	}
	if in.Mode != "" && !modePattern.MatchString(in.Mode) {
		return fmt.Errorf("mode %q: want octal like 0755", clip.String(in.Mode, 64))
	}
	if !printable(in.Target) {
		return fmt.Errorf("target %q: control or invisible characters", clip.String(in.Target, 64))
	}
	for _, argv := range [][]string{in.Command, in.HealthCheck, in.RollbackCommand} {
		for _, arg := range argv {
			if arg == "" || !printable(arg) {
				return fmt.Errorf("command argument %q: empty, or control or invisible characters", clip.String(arg, 64))
			}
		}
	}
	return nil
}

// printable reports whether s holds only printable runes (spaces included):
// no control characters, no bidirectional overrides or other format runes
// that could make a reviewer read something else than what gets run.
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Verified is a manifest whose envelope verified against a trust root.
type Verified struct {
	*Manifest
	Envelope *signing.Envelope
	SignedBy []signing.KeyID
	Root     *signing.Root
}

// Verify is the one verification path for release manifests. It parses the
// envelope (bounded by signing.MaxEnvelopeSize), checks that a threshold of
// the root's keys signed the exact payload bytes, and only then decodes the
// payload, validates it, and checks the expiry of the manifest and of the root
// against now. It does not know what is installed: callers compare
// Sequence themselves (see CheckSequence).
func Verify(envelope []byte, root *signing.Root, now time.Time) (*Verified, error) {
	env, err := signing.ParseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	return VerifyEnvelope(env, root, now)
}

// VerifyEnvelope is Verify for an envelope already parsed.
func VerifyEnvelope(env *signing.Envelope, root *signing.Root, now time.Time) (*Verified, error) {
	signers, err := root.VerifyEnvelope(env, PayloadType)
	if err != nil {
		return nil, fmt.Errorf("verify manifest against root version %d: %w", root.Version, err)
	}
	if err := root.CheckExpiry(now); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	m, err := Decode(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	if now.After(m.Expires) {
		return nil, fmt.Errorf("verify manifest: %s/%s sequence %d (version %s) %w on %s: a current release must be re-signed; not trusted",
			m.Product, m.Channel, m.Sequence, m.Version, ErrExpired, m.Expires.UTC().Format(time.RFC3339))
	}
	return &Verified{Manifest: m, Envelope: env, SignedBy: signers, Root: root}, nil
}
