package manifest_test

import (
	"bytes"
	"fmt"
	"log"
	"time"

	"github.com/fleetcast/fleetcast/manifest"
	"github.com/fleetcast/fleetcast/signing"
)

func ExampleVerify() {
	// The release key. Real keys come from signing.GenerateKey and live in
	// encrypted key files; a fixed seed keeps this example's output fixed.
	key, err := signing.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		log.Fatal(err)
	}

	// The trust root that machines pin: key 1 alone may sign releases.
	root := &signing.Root{Version: 1, Expires: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), Threshold: 1, Keys: []signing.PublicKey{key.Public}}
	rootEnv, err := root.Envelope()
	if err != nil {
		log.Fatal(err)
	}
	rootEnv.Sign(key)
	pinned, _, err := signing.ParseRoot(rootEnv.Marshal())
	if err != nil {
		log.Fatal(err)
	}

	// A release of a one-chunk artifact, signed.
	artifact := []byte("#!/bin/sh\necho hello, fleet\n")
	payload, err := manifest.Encode(&manifest.Manifest{
		Product:  "myapp",
		Channel:  "stable",
		Sequence: 7,
		Version:  "1.4.2",
		Created:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Expires:  time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC),
		Artifact: manifest.Artifact{Name: "hello.sh", Size: int64(len(artifact)), SHA256: manifest.Sum(artifact)},
		Chunking: manifest.DefaultChunking(),
		Chunks:   []manifest.Chunk{{SHA256: manifest.Sum(artifact), Size: int64(len(artifact))}},
		Install:  manifest.Install{Installer: "file", Target: "/usr/local/bin/hello", Mode: "0755"},
	})
	if err != nil {
		log.Fatal(err)
	}
	env := signing.NewEnvelope(manifest.PayloadType, payload)
	env.Sign(key)
	signed := env.Marshal()

	// What an agent does with the bytes it fetched, at a given time.
	v, err := manifest.Verify(signed, pinned, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s/%s sequence %d (version %s)\n", v.Product, v.Channel, v.Sequence, v.Version)
	fmt.Println("signed by", v.SignedBy)

	// A month after it expires, the same bytes are refused.
	_, err = manifest.Verify(signed, pinned, time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println(err)
	// Output:
	// myapp/stable sequence 7 (version 1.4.2)
	// signed by [d9323ffa3d117327]
	// verify manifest: myapp/stable sequence 7 (version 1.4.2) manifest expired on 2026-07-01T00:00:00Z: a current release must be re-signed; not trusted
}

func ExampleManifest_Offsets() {
	// Three chunks of 4, 6 and 2 bytes: each starts where the ones before
	// it end.
	part := func(s string) manifest.Chunk {
		return manifest.Chunk{SHA256: manifest.Sum([]byte(s)), Size: int64(len(s))}
	}
	m := &manifest.Manifest{Chunks: []manifest.Chunk{part("#!/b"), part("in/sh\n"), part("ok")}}
	for i, off := range m.Offsets() {
		fmt.Printf("chunk %d: bytes %d to %d\n", i, off, off+m.Chunks[i].Size)
	}
	// Output:
	// chunk 0: bytes 0 to 4
	// chunk 1: bytes 4 to 10
	// chunk 2: bytes 10 to 12
}
