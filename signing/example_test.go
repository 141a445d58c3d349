package signing_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/fleetcast/fleetcast/signing"
)

func ExampleGenerateKey() {
	k, err := signing.GenerateKey(nil) // crypto/rand
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key id length:", len(k.Public.ID))

	// Key files carry only the public half; the id is checked on parse.
	pub, err := signing.ParsePublicKey(signing.MarshalPublicKey(k.Public))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same id after round trip:", pub.ID == k.Public.ID)
	// Output:
	// key id length: 16
	// same id after round trip: true
}

func ExampleNewKeyFromSeed() {
	seed := bytes.Repeat([]byte{1}, 32) // a fixed seed: for examples and tests only
	k, err := signing.NewKeyFromSeed(seed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Public.ID)
	fmt.Println(k.Public.ID == signing.DeriveKeyID(k.Public.Key))
	// Output:
	// d9323ffa3d117327
	// true
}

func ExamplePAE() {
	fmt.Printf("%s\n", signing.PAE("http://example.com/HelloWorld", []byte("hello world")))
	// Output: DSSEv1 29 http://example.com/HelloWorld 11 hello world
}

func ExampleRoot_VerifyEnvelope() {
	var keys []*signing.PrivateKey
	for i := range 3 {
		k, err := signing.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			log.Fatal(err)
		}
		keys = append(keys, k)
	}
	// Any 2 of the 3 keys may sign.
	root := &signing.Root{
		Version:   1,
		Expires:   time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC),
		Threshold: 2,
		Keys:      []signing.PublicKey{keys[0].Public, keys[1].Public, keys[2].Public},
	}
	const payloadType = "application/vnd.example+json"

	env := signing.NewEnvelope(payloadType, []byte(`{"release":"1.2.3"}`))
	env.Sign(keys[0])
	env.Sign(keys[2])
	data := env.Marshal() // what is published

	// The verifier parses, then verifies before using the payload.
	got, err := signing.ParseEnvelope(data)
	if err != nil {
		log.Fatal(err)
	}
	ids, err := root.VerifyEnvelope(got, payloadType)
	fmt.Println(len(ids), "valid signatures, error:", err)

	// One signature is not enough.
	one := signing.NewEnvelope(payloadType, []byte(`{"release":"1.2.3"}`))
	one.Sign(keys[1])
	_, err = root.VerifyEnvelope(one, payloadType)
	fmt.Println(errors.Is(err, signing.ErrThreshold))

	// Altering the payload breaks the signatures.
	got.Payload = []byte(`{"release":"6.6.6"}`)
	_, err = root.VerifyEnvelope(got, payloadType)
	fmt.Println(errors.Is(err, signing.ErrBadSignature))
	// Output:
	// 2 valid signatures, error: <nil>
	// true
	// true
}

func ExampleRoot_Rotate() {
	oldKey, _ := signing.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	newKey, _ := signing.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	expires := time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)
	v1 := &signing.Root{Version: 1, Expires: expires, Threshold: 1, Keys: []signing.PublicKey{oldKey.Public}}
	v2 := &signing.Root{Version: 2, Expires: expires, Threshold: 1, Keys: []signing.PublicKey{newKey.Public}}

	// The old key hands over trust; the new key shows it is live.
	env, err := v2.Envelope()
	if err != nil {
		log.Fatal(err)
	}
	env.Sign(oldKey)
	env.Sign(newKey)

	next, err := v1.Rotate(env.Marshal())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("now trusting version", next.Version, "keys", next.KeyIDs())
	fmt.Println(next.CheckExpiry(time.Date(2029, time.June, 1, 0, 0, 0, 0, time.UTC)))
	// Output:
	// now trusting version 2 keys 1257a85eb2962a84
	// <nil>
}
