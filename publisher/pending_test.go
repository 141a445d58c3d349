package publisher

import (
	"context"
	"strings"
	"testing"

	"github.com/fleetcast/fleetcast/signing"
	"github.com/fleetcast/fleetcast/signing/signingtest"
)

func TestPendingIsNotOverwrittenByAnotherVersion(t *testing.T) {
	a, b := signingtest.Key(t, 1), signingtest.Key(t, 2)
	o := newOrigin(t, signedRoot(t, 1, 2, []*signing.PrivateKey{a, b}, a, b))
	path, _ := writeArtifact(t, t.TempDir(), 8, 200<<10)
	if _, err := Publish(context.Background(), o, path, testOptions("1.0", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), o, path, testOptions("1.0", a)); err != nil {
		t.Fatalf("re-publishing the pending version: %v", err)
	}
	_, err := Publish(context.Background(), o, path, testOptions("1.1", a))
	if err == nil || !strings.Contains(err.Error(), "holds version 1.0, waiting for co-signatures") {
		t.Fatalf("a pending manifest of another version was overwritten: %v", err)
	}
}
