package manifest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	artifact := testArtifact(5000)
	tests := []struct {
		name string
		edit func(m *manifest.Manifest)
	}{
		{"file", func(m *manifest.Manifest) {}},
		{"command with health check and rollback", func(m *manifest.Manifest) {
			m.Install = manifest.Install{
				Installer:       "command",
				Command:         []string{"dpkg", "-i", "{artifact}"},
				HealthCheck:     []string{"/opt/myapp/bin/myapp", "--self-test"},
				RollbackCommand: []string{"dpkg", "-r", "myapp"},
			}
		}},
		{"archive without mode", func(m *manifest.Manifest) {
			m.Install = manifest.Install{Installer: "archive", Target: "/opt/myapp"}
		}},
		{"empty artifact", func(m *manifest.Manifest) {
			m.Artifact = manifest.Artifact{Name: "empty", Size: 0, SHA256: manifest.Sum(nil)}
			m.Chunks = nil
		}},
		{"times in another zone", func(m *manifest.Manifest) {
			zone := time.FixedZone("UTC+2", 2*60*60)
			m.Created, m.Expires = m.Created.In(zone), m.Expires.In(zone)
		}},
		{"large numbers", func(m *manifest.Manifest) {
			m.Sequence = 1<<64 - 1
			m.Chunking = manifest.Chunking{Algorithm: manifest.ChunkingFastCDC, Min: 1, Avg: 2, Max: manifest.MaxChunkSize}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest(t, artifact, 1000, 4000)
			tt.edit(m)
			payload, err := manifest.Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := manifest.Decode(payload)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, payload)
			}
			if !manifestsEqual(got, m) {
				t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", got, m)
			}
			if got.Created.Location() != time.UTC || got.Expires.Location() != time.UTC {
				t.Errorf("decoded times not in UTC: %v, %v", got.Created, got.Expires)
			}
			again, err := manifest.Encode(got)
			if err != nil {
				t.Fatalf("Encode again: %v", err)
			}
			if !bytes.Equal(again, payload) {
				t.Errorf("encoding is not stable:\n%s\n%s", payload, again)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	artifact := testArtifact(5000)
	tests := []struct {
		name string
		edit func(m *manifest.Manifest)
		want string // substring of the error; "" means valid
	}{
		{"valid", func(m *manifest.Manifest) {}, ""},
		{"name with dot, dash, underscore", func(m *manifest.Manifest) { m.Product, m.Channel = "my-app_2.x", "0beta" }, ""},
		{"64 character name", func(m *manifest.Manifest) { m.Product = strings.Repeat("a", 64) }, ""},
		{"setuid mode", func(m *manifest.Manifest) { m.Install.Mode = "04755" }, ""},
		{"version with plus and tilde", func(m *manifest.Manifest) { m.Version = "1.0.0~rc1+build.7" }, ""},

		{"empty product", func(m *manifest.Manifest) { m.Product = "" }, "product"},
		{"product roots", func(m *manifest.Manifest) { m.Product = "roots" }, "product"},
		{"product chunks", func(m *manifest.Manifest) { m.Product = "chunks" }, "product"},
		{"uppercase product", func(m *manifest.Manifest) { m.Product = "MyApp" }, "product"},
		{"product with slash", func(m *manifest.Manifest) { m.Product = "my/app" }, "product"},
		{"product dot dot", func(m *manifest.Manifest) { m.Product = ".." }, "product"},
		{"product leading dash", func(m *manifest.Manifest) { m.Product = "-app" }, "product"},
		{"65 character product", func(m *manifest.Manifest) { m.Product = strings.Repeat("a", 65) }, "product"},
		{"channel roots", func(m *manifest.Manifest) { m.Channel = "roots" }, "channel"},
		{"channel chunks", func(m *manifest.Manifest) { m.Channel = "chunks" }, "channel"},
		{"uppercase channel", func(m *manifest.Manifest) { m.Channel = "Stable" }, "channel"},
		{"channel with slash", func(m *manifest.Manifest) { m.Channel = "stable/x" }, "channel"},
		{"empty channel", func(m *manifest.Manifest) { m.Channel = "" }, "channel"},

		{"sequence 0", func(m *manifest.Manifest) { m.Sequence = 0 }, "sequence"},

		{"empty version", func(m *manifest.Manifest) { m.Version = "" }, "version"},
		{"version with space", func(m *manifest.Manifest) { m.Version = "1.0 beta" }, "version"},
		{"version with slash", func(m *manifest.Manifest) { m.Version = "1.0/../x" }, "version"},
		{"version leading dot", func(m *manifest.Manifest) { m.Version = ".1" }, "version"},
		{"version too long", func(m *manifest.Manifest) { m.Version = strings.Repeat("1", 129) }, "version"},

		{"expires before created", func(m *manifest.Manifest) { m.Expires = m.Created.Add(-time.Second) }, "expires after created"},
		{"expires equals created", func(m *manifest.Manifest) { m.Expires = m.Created }, "expires after created"},
		{"no created", func(m *manifest.Manifest) { m.Created = time.Time{} }, "created"},
		{"no expires", func(m *manifest.Manifest) { m.Expires = time.Time{} }, "expires"},
		{"expires after year 9999 in UTC", func(m *manifest.Manifest) {
			m.Expires = time.Date(9999, time.December, 31, 23, 30, 0, 0, time.FixedZone("", -3600))
		}, "years 0000 to 9999"},
		{"created before year 0 in UTC", func(m *manifest.Manifest) {
			m.Created = time.Date(0, time.January, 1, 0, 30, 0, 0, time.FixedZone("", 3600))
		}, "years 0000 to 9999"},
		{"expires in year 9999", func(m *manifest.Manifest) {
			m.Expires = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)
		}, ""},

		{"artifact name with slash", func(m *manifest.Manifest) { m.Artifact.Name = "../evil" }, "artifact name"},
		{"empty artifact name", func(m *manifest.Manifest) { m.Artifact.Name = "" }, "artifact name"},

		{"chunk sizes short of artifact", func(m *manifest.Manifest) { m.Artifact.Size++ }, "add up to 5000 bytes, artifact size is 5001"},
		{"chunk sizes beyond artifact", func(m *manifest.Manifest) { m.Chunks[1].Size-- }, "add up to"},
		{"chunks missing", func(m *manifest.Manifest) { m.Chunks = nil }, "add up to 0 bytes"},
		{"chunk size 0", func(m *manifest.Manifest) {
			m.Chunks = append(m.Chunks, manifest.Chunk{SHA256: manifest.Sum(nil), Size: 0})
		}, "chunk 2: size 0"},
		{"negative chunk size", func(m *manifest.Manifest) {
			m.Chunks[0].Size, m.Chunks[1].Size = -1, 5001
		}, "chunk 0: size -1"},
		{"chunk larger than chunking max", func(m *manifest.Manifest) { m.Chunking.Max = 3999 }, "chunk 1: size 4000 outside 1..3999"},
		{"chunking max 0", func(m *manifest.Manifest) { m.Chunking.Max = 0 }, "chunking"},
		{"chunking max above limit", func(m *manifest.Manifest) { m.Chunking.Max = manifest.MaxChunkSize + 1 }, "chunking"},
		{"chunking algorithm missing", func(m *manifest.Manifest) { m.Chunking.Algorithm = "" }, "chunking"},

		{"unknown installer", func(m *manifest.Manifest) { m.Install.Installer = "shell" }, `installer "shell"`},
		{"no installer", func(m *manifest.Manifest) { m.Install.Installer = "" }, `installer ""`},
		{"file without target", func(m *manifest.Manifest) { m.Install.Target = "" }, "needs a target"},
		{"archive without target", func(m *manifest.Manifest) {
			m.Install = manifest.Install{Installer: "archive"}
		}, "needs a target"},
		{"command without command", func(m *manifest.Manifest) {
			m.Install = manifest.Install{Installer: "command", Command: []string{}}
		}, "needs a command"},
		{"target too long", func(m *manifest.Manifest) { m.Install.Target = "/" + strings.Repeat("a", 4096) }, "target longer"},
		{"carriage return in target", func(m *manifest.Manifest) { m.Install.Target = "/etc/sudoers.d/x\r   /opt/app" }, "control or invisible"},
		{"bidi override in argument", func(m *manifest.Manifest) {
			m.Install.Installer, m.Install.Command = "command", []string{"dpkg", "-i", "\u202e{artifact}"}
		}, "control or invisible"},
		{"too many command arguments", func(m *manifest.Manifest) {
			m.Install = manifest.Install{Installer: "command", Command: make([]string, manifest.MaxInstallArgs+1)}
		}, "65 arguments"},
		{"too many health check arguments", func(m *manifest.Manifest) {
			m.Install.HealthCheck = make([]string, manifest.MaxInstallArgs+1)
		}, "65 arguments"},
		{"too many rollback arguments", func(m *manifest.Manifest) {
			m.Install.RollbackCommand = make([]string, manifest.MaxInstallArgs+1)
		}, "65 arguments"},
		{"mode not octal", func(m *manifest.Manifest) { m.Install.Mode = "0789" }, "mode"},
		{"mode without leading 0", func(m *manifest.Manifest) { m.Install.Mode = "755" }, "mode"},
		{"mode symbolic", func(m *manifest.Manifest) { m.Install.Mode = "rwxr-xr-x" }, "mode"},
		{"mode too long", func(m *manifest.Manifest) { m.Install.Mode = "007555" }, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest(t, artifact, 1000, 4000)
			tt.edit(m)
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("Validate: got %v, want %v", err, manifest.ErrInvalid)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %q does not mention %q", err, tt.want)
			}
			// Encode refuses what Validate refuses.
			if _, err := manifest.Encode(m); !errors.Is(err, manifest.ErrInvalid) {
				t.Errorf("Encode: got %v, want %v", err, manifest.ErrInvalid)
			}
		})
	}
}

func TestValidateChunkCountLimit(t *testing.T) {
	m := testManifest(t, nil)
	m.Chunking.Max = 1
	m.Chunks = make([]manifest.Chunk, manifest.MaxChunks)
	for i := range m.Chunks {
		m.Chunks[i].Size = 1
	}
	m.Artifact.Size = manifest.MaxChunks
	if err := m.Validate(); err != nil {
		t.Fatalf("MaxChunks chunks: %v", err)
	}
	m.Chunks = append(m.Chunks, manifest.Chunk{Size: 1})
	m.Artifact.Size++
	err := m.Validate()
	if !errors.Is(err, manifest.ErrInvalid) || !errors.Is(err, signing.ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("%d chunks, limit %d", manifest.MaxChunks+1, manifest.MaxChunks)) {
		t.Fatalf("MaxChunks+1 chunks: got %v, want %v naming the limit", err, manifest.ErrInvalid)
	}
}

func TestDecodeStrict(t *testing.T) {
	payload, err := manifest.Encode(testManifest(t, testArtifact(100), 100))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"unknown top-level field", bytes.Replace(payload, []byte(`"product"`), []byte(`"extra": 1, "product"`), 1), signing.ErrMalformed},
		{"unknown nested field", bytes.Replace(payload, []byte(`"installer"`), []byte(`"shell": "sh", "installer"`), 1), signing.ErrMalformed},
		{"trailing object", append(bytes.Clone(payload), "{}"...), signing.ErrMalformed},
		{"trailing garbage", append(bytes.Clone(payload), "x"...), signing.ErrMalformed},
		{"two manifests", append(bytes.Clone(payload), payload...), signing.ErrMalformed},
		{"truncated", payload[:len(payload)/2], signing.ErrMalformed},
		{"empty", nil, signing.ErrMalformed},
		{"not an object", []byte(`[1, 2]`), signing.ErrMalformed},
		{"null", []byte(`null`), signing.ErrMalformed},
		{"bad digest", bytes.Replace(payload, []byte(`"sha256": "`), []byte(`"sha256": "X`), 1), signing.ErrMalformed},
		{"negative sequence", bytes.Replace(payload, []byte(`"sequence": 1`), []byte(`"sequence": -1`), 1), signing.ErrMalformed},
		{"time without zone", bytes.Replace(payload, []byte(`"2026-01-01T00:00:00Z"`), []byte(`"2026-01-01T00:00:00"`), 1), signing.ErrMalformed},
		{"valid but breaks a rule", bytes.Replace(payload, []byte(`"sequence": 1`), []byte(`"sequence": 0`), 1), manifest.ErrInvalid},
		{"too large", make([]byte, signing.MaxEnvelopeSize+1), signing.ErrTooLarge},
		{"trailing white space is fine", append(bytes.Clone(payload), " \n\t"...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.Decode(tt.payload)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Decode: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	k1, k2, k3, stranger := signingtest.Key(t, 1), signingtest.Key(t, 2), signingtest.Key(t, 3), signingtest.Key(t, 9)
	artifact := testArtifact(3000)
	m := testManifest(t, artifact, 1000, 2000)
	notJSON := []byte("this is not JSON {")
	invalid := *m
	invalid.Sequence = 0
	invalidPayload := mustMarshalUnchecked(t, &invalid)
	badSig := signManifest(t, m, k1)
	badSig.Signatures[0].Sig[0] ^= 1
	badSigNotJSON := signPayload(manifest.PayloadType, notJSON, k1)
	badSigNotJSON.Signatures[0].Sig[5] ^= 0x80

	root1 := signingtest.Root(1, 1, testExpires, k1)
	root2of3 := signingtest.Root(1, 2, testExpires, k1, k2, k3)
	tests := []struct {
		name    string
		env     *signing.Envelope
		root    *signing.Root
		now     time.Time
		want    error
		notWant error // must not match, to prove which check failed
	}{
		{"ok", signManifest(t, m, k1), root1, testNow, nil, nil},
		{"ok 2 of 3", signManifest(t, m, k3, k1), root2of3, testNow, nil, nil},
		{"ok extra unknown signature", signManifest(t, m, stranger, k1), root1, testNow, nil, nil},
		{"ok at the expiry instant", signManifest(t, m, k1), root1, testExpires, nil, nil},
		{"expired", signManifest(t, m, k1), signingtest.Root(1, 1, testExpires.AddDate(1, 0, 0), k1), testExpires.Add(time.Second), manifest.ErrExpired, signing.ErrRootExpired},
		{"root expired", signManifest(t, m, k1), signingtest.Root(1, 1, testNow.Add(-time.Hour), k1), testNow, signing.ErrRootExpired, manifest.ErrExpired},
		{"unsigned", signManifest(t, m), root1, testNow, signing.ErrThreshold, signing.ErrBadSignature},
		{"below threshold", signManifest(t, m, k2), root2of3, testNow, signing.ErrThreshold, signing.ErrBadSignature},
		{"bad signature", badSig, root1, testNow, signing.ErrBadSignature, nil},
		{"unknown key", signManifest(t, m, stranger), root1, testNow, signing.ErrUnknownKey, signing.ErrBadSignature},
		{"root payload type", signPayload(signing.RootPayloadType, mustEncode(t, m), k1), root1, testNow, signing.ErrPayloadType, nil},
		{"root with threshold 0", signManifest(t, m), signingtest.Root(1, 0, testExpires, k1), testNow, signing.ErrMalformed, nil},
		// Verify before parse: a payload that is not even JSON fails on its
		// signature when it is not properly signed...
		{"unsigned non-JSON payload", signPayload(manifest.PayloadType, notJSON), root1, testNow, signing.ErrThreshold, signing.ErrMalformed},
		{"badly signed non-JSON payload", badSigNotJSON, root1, testNow, signing.ErrBadSignature, signing.ErrMalformed},
		{"non-JSON payload signed by unknown key", signPayload(manifest.PayloadType, notJSON, stranger), root1, testNow, signing.ErrUnknownKey, signing.ErrMalformed},
		// ...and is decoded, and refused, only once the signature holds.
		{"signed non-JSON payload", signPayload(manifest.PayloadType, notJSON, k1), root1, testNow, signing.ErrMalformed, signing.ErrThreshold},
		{"signed invalid manifest", signPayload(manifest.PayloadType, invalidPayload, k1), root1, testNow, manifest.ErrInvalid, signing.ErrThreshold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(t *testing.T, v *manifest.Verified, err error) {
				t.Helper()
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				if tt.notWant != nil && errors.Is(err, tt.notWant) {
					t.Fatalf("got %v, which must not match %v", err, tt.notWant)
				}
				if err != nil {
					if v != nil {
						t.Errorf("returned a manifest with error %v", err)
					}
					return
				}
				if !manifestsEqual(v.Manifest, m) || v.Root != tt.root || v.Envelope == nil {
					t.Errorf("Verified = %+v, want manifest %+v and root %p", v, m, tt.root)
				}
				for _, id := range v.SignedBy {
					if _, ok := tt.root.Key(id); !ok {
						t.Errorf("SignedBy lists %s, not in the root", id)
					}
				}
				if len(v.SignedBy) < tt.root.Threshold {
					t.Errorf("SignedBy = %v, fewer than the threshold %d", v.SignedBy, tt.root.Threshold)
				}
			}
			t.Run("Verify", func(t *testing.T) {
				v, err := manifest.Verify(tt.env.Marshal(), tt.root, tt.now)
				check(t, v, err)
			})
			t.Run("VerifyEnvelope", func(t *testing.T) {
				v, err := manifest.VerifyEnvelope(tt.env, tt.root, tt.now)
				check(t, v, err)
			})
		})
	}
}

func TestVerifyMessages(t *testing.T) {
	k1 := signingtest.Key(t, 1)
	m := testManifest(t, testArtifact(10), 10)
	m.Sequence, m.Version = 41, "1.4.1"
	m.Expires = time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)
	_, err := manifest.Verify(signManifest(t, m, k1).Marshal(), signingtest.Root(1, 1, testExpires, k1), testNow)
	for _, want := range []string{"myapp/stable", "sequence 41", "1.4.1", "2026-03-01T00:00:00Z", "re-signed"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expiry error %q does not mention %q", err, want)
		}
	}
}

func TestVerifyMalformedEnvelope(t *testing.T) {
	k1 := signingtest.Key(t, 1)
	good := signManifest(t, testManifest(t, testArtifact(10), 10), k1).Marshal()
	for name, data := range map[string][]byte{
		"empty":         nil,
		"truncated":     good[:len(good)/2],
		"trailing data": append(bytes.Clone(good), "{}"...),
		"bad base64":    bytes.Replace(good, []byte(`"payload":"`), []byte(`"payload":"!`), 1),
		"unknown field": bytes.Replace(good, []byte(`{"payloadType"`), []byte(`{"x":1,"payloadType"`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := manifest.Verify(data, signingtest.Root(1, 1, testExpires, k1), testNow); !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("got %v, want %v", err, signing.ErrMalformed)
			}
		})
	}
}

func TestCheckSequence(t *testing.T) {
	m := testManifest(t, testArtifact(10), 10)
	m.Sequence = 42
	tests := []struct {
		trusted uint64
		want    error
	}{
		{0, nil},
		{41, nil},
		{42, manifest.ErrRollback},
		{43, manifest.ErrRollback},
		{1<<64 - 1, manifest.ErrRollback},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.trusted), func(t *testing.T) {
			err := manifest.CheckSequence(m, tt.trusted)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("CheckSequence(42, trusted %d) = %v, want %v", tt.trusted, err, tt.want)
			}
			if err == nil {
				return
			}
			for _, want := range []string{"sequence 42", fmt.Sprintf("trusted sequence %d", tt.trusted), "myapp/stable", "not installed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestVerifyArtifact(t *testing.T) {
	artifact := testArtifact(5000)
	m := testManifest(t, artifact, 1000, 3000, 1000)
	flip := func(i int) []byte {
		b := bytes.Clone(artifact)
		b[i] ^= 0x01
		return b
	}
	empty := testManifest(t, nil)
	wrongWhole := testManifest(t, artifact, 1000, 3000, 1000)
	wrongWhole.Artifact.SHA256[0] ^= 1
	tests := []struct {
		name      string
		m         *manifest.Manifest
		data      []byte
		want      error
		mention   string
		wantBytes int64
	}{
		{"ok", m, artifact, nil, "", 5000},
		{"flipped byte in first chunk", m, flip(0), manifest.ErrMismatch, "chunk 0 at offset 0", 0},
		{"flipped byte in middle chunk", m, flip(2500), manifest.ErrMismatch, "chunk 1 at offset 1000", 1000},
		{"flipped last byte", m, flip(4999), manifest.ErrMismatch, "chunk 2 at offset 4000", 4000},
		{"truncated inside a chunk", m, artifact[:4500], manifest.ErrMismatch, "ends inside chunk 2", 4000},
		{"truncated at a chunk boundary", m, artifact[:4000], manifest.ErrMismatch, "ends inside chunk 2", 4000},
		{"empty file", m, nil, manifest.ErrMismatch, "ends inside chunk 0", 0},
		{"one byte longer", m, append(bytes.Clone(artifact), 0), manifest.ErrMismatch, "longer than the manifest's 5000 bytes", 5000},
		{"twice as long", m, append(bytes.Clone(artifact), artifact...), manifest.ErrMismatch, "longer", 5000},
		{"whole-file digest differs", wrongWhole, artifact, manifest.ErrMismatch, "whole-file SHA-256", 5000},
		{"empty artifact, zero chunks", empty, nil, nil, "", 0},
		{"empty artifact, data present", empty, []byte{0}, manifest.ErrMismatch, "longer than the manifest's 0 bytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A real file, as the CLI and the agent read it.
			path := filepath.Join(t.TempDir(), "artifact")
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := manifest.VerifyArtifact(f, tt.m)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyArtifact: got %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if rep.Bytes != tt.wantBytes {
				t.Errorf("report: %d bytes verified, want %d", rep.Bytes, tt.wantBytes)
			}
			if err == nil && rep.Chunks != len(tt.m.Chunks) {
				t.Errorf("report: %d chunks, want %d", rep.Chunks, len(tt.m.Chunks))
			}
		})
	}
}

// TestVerifyArtifactReadError checks that an I/O error is reported as such,
// not as a mismatch the operator would take for tampering.
func TestVerifyArtifactReadError(t *testing.T) {
	artifact := testArtifact(10)
	m := testManifest(t, artifact, 10)
	ioErr := errors.New("disk on fire")
	_, err := manifest.VerifyArtifact(io.MultiReader(bytes.NewReader(artifact[:5]), iotest.ErrReader(ioErr)), m)
	if !errors.Is(err, ioErr) {
		t.Fatalf("got %v, want %v", err, ioErr)
	}
}

func TestVerifyArtifactUnvalidated(t *testing.T) {
	// A manifest built in code and never validated must not make
	// VerifyArtifact panic.
	artifact := testArtifact(100)
	for name, edit := range map[string]func(m *manifest.Manifest){
		"chunk above chunking max": func(m *manifest.Manifest) { m.Chunking.Max = 10 },
		"chunking max 0":           func(m *manifest.Manifest) { m.Chunking.Max = 0 },
		"negative chunk size":      func(m *manifest.Manifest) { m.Chunks[0].Size = -1 },
		"chunk above artifact":     func(m *manifest.Manifest) { m.Artifact.Size = 10 },
	} {
		t.Run(name, func(t *testing.T) {
			m := testManifest(t, artifact, 100)
			edit(m)
			if _, err := manifest.VerifyArtifact(bytes.NewReader(artifact), m); !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("got %v, want %v", err, manifest.ErrInvalid)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	d := manifest.Sum([]byte("chunk"))
	tests := []struct{ got, want string }{
		{manifest.ChunkPath(d), "chunks/" + d.String()[:2] + "/" + d.String()},
		{manifest.RootPath(1), "roots/1.root.json"},
		{manifest.RootPath(1234), "roots/1234.root.json"},
		{manifest.LatestPath("myapp", "stable"), "myapp/stable/manifest.json"},
		{manifest.HistoryPath("myapp", "stable", 42), "myapp/stable/history/42.json"},
		{manifest.PendingPath("myapp", "beta", 7), "myapp/beta/pending/7.json"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if len(manifest.ChunkPath(d)) != len("chunks/xx/")+64 {
		t.Errorf("ChunkPath(%s) = %q", d, manifest.ChunkPath(d))
	}
}

func mustEncode(t testing.TB, m *manifest.Manifest) []byte {
	t.Helper()
	b, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustMarshalUnchecked encodes m the way Encode does but without validating
// it, to build signed payloads that break the format's rules.
func mustMarshalUnchecked(t testing.TB, m *manifest.Manifest) []byte {
	t.Helper()
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestOffsets(t *testing.T) {
	chunks := func(sizes ...int64) []manifest.Chunk {
		var cs []manifest.Chunk
		for _, s := range sizes {
			cs = append(cs, manifest.Chunk{Size: s})
		}
		return cs
	}
	for _, tc := range []struct {
		name   string
		chunks []manifest.Chunk
		want   []int64
	}{
		{"no chunks", nil, []int64{}},
		{"one chunk", chunks(5), []int64{0}},
		{"several", chunks(3, 10, 1, 7), []int64{0, 3, 13, 14}},
		{"beyond 4 GiB", chunks(3<<30, 3<<30, 1), []int64{0, 3 << 30, 6 << 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &manifest.Manifest{Chunks: tc.chunks}
			if got := m.Offsets(); !slices.Equal(got, tc.want) || got == nil {
				t.Errorf("Offsets() = %#v, want %#v", got, tc.want)
			}
		})
	}
}
