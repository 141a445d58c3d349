package signing

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestRotate(t *testing.T) {
	ks := testKeys(t, 6)
	a, b, c, d, e, outsider := ks[0], ks[1], ks[2], ks[3], ks[4], ks[5]
	v1 := testRoot(1, 2, a, b, c)
	v2 := testRoot(2, 2, c, d, e)
	v2same := testRoot(2, 2, a, b, c)
	tests := []struct {
		name  string
		from  *Root
		next  []byte
		want  *Root
		wants []error
		msg   string
	}{
		{name: "old and new thresholds", from: v1, next: signRoot(t, v2, a, b, d, e), want: v2},
		{name: "shared key counts for both", from: v1, next: signRoot(t, v2, a, c, d), want: v2},
		{name: "same keys, next version", from: v1, next: signRoot(t, v2same, a, b), want: v2same},
		{name: "every key", from: v1, next: signRoot(t, v2, ks...), want: v2},
		{name: "only new keys", from: v1, next: signRoot(t, v2, c, d, e),
			wants: []error{ErrRotation, ErrThreshold}, msg: "not signed by a threshold of root version 1's keys"},
		{name: "only old keys", from: v1, next: signRoot(t, v2, a, b),
			wants: []error{ErrRotation, ErrThreshold}, msg: "root version 2 is not signed by a threshold of its own keys"},
		{name: "one old key and new keys", from: v1, next: signRoot(t, v2, a, d, e),
			wants: []error{ErrRotation, ErrThreshold}},
		{name: "outsider", from: v1, next: signRoot(t, v2, outsider),
			wants: []error{ErrRotation, ErrUnknownKey}},
		{name: "version skips", from: v1, next: signRoot(t, testRoot(3, 2, c, d, e), ks...),
			wants: []error{ErrRotation}, msg: "root version 3 does not follow version 1"},
		{name: "version repeats", from: v1, next: signRoot(t, testRoot(1, 2, c, d, e), ks...),
			wants: []error{ErrRotation}, msg: "root version 1 does not follow version 1"},
		{name: "version goes back", from: v2, next: signRoot(t, testRoot(1, 2, c, d, e), ks...),
			wants: []error{ErrRotation}, msg: "root version 1 does not follow version 2"},
		{name: "same root again", from: v1, next: signRoot(t, v1, a, b, c), wants: []error{ErrRotation}},
		{name: "not a root envelope", from: v1, next: signedEnvelope("text/plain", []byte("{}"), ks...).Marshal(),
			wants: []error{ErrPayloadType}},
		{name: "garbage", from: v1, next: []byte("<html>"), wants: []error{ErrMalformed}},
		{name: "bad payload signed by old keys", from: v1, next: signedEnvelope(RootPayloadType, []byte(`{"version":2}`), a, b).Marshal(),
			wants: []error{ErrRotation, ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.from
			got, err := tt.from.Rotate(tt.next)
			if !rootsEqual(tt.from, &before) {
				t.Error("Rotate changed the old root")
			}
			if tt.wants == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !rootsEqual(got, tt.want) {
					t.Errorf("new root %+v, want %+v", got, tt.want)
				}
				return
			}
			if got != nil {
				t.Errorf("returned root version %d with error", got.Version)
			}
			for _, w := range tt.wants {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

// rootStore is an in-memory root fetcher: encoded envelopes by version.
type rootStore map[uint64][]byte

func (s rootStore) fetch(ctx context.Context, version uint64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, ok := s[version]
	if !ok {
		return nil, fmt.Errorf("root version %d: %w", version, fs.ErrNotExist)
	}
	return b, nil
}

func TestFollowChain(t *testing.T) {
	ks := testKeys(t, 4)
	v1 := testRoot(1, 1, ks[0])
	v2 := testRoot(2, 1, ks[1])
	v3 := testRoot(3, 2, ks[2], ks[3])
	chain := rootStore{
		2: signRoot(t, v2, ks[0], ks[1]),
		3: signRoot(t, v3, ks[1], ks[2], ks[3]),
	}
	tests := []struct {
		name    string
		store   rootStore
		want    *Root // returned in every case: the newest root reached
		wantErr error
		msg     string
	}{
		{name: "v1 to v3", store: chain, want: v3},
		{name: "nothing newer", store: rootStore{}, want: v1},
		{name: "stops at a gap", store: rootStore{2: chain[2], 4: signRoot(t, testRoot(4, 1, ks[0]), ks...)}, want: v2},
		{name: "bad link", store: rootStore{2: chain[2], 3: signRoot(t, v3, ks[2], ks[3])}, want: v2,
			wantErr: ErrRotation, msg: "root version 3: "},
		{name: "tampered link", store: rootStore{2: chain[2], 3: append(chain[3][:20:20], 'x')}, want: v2,
			wantErr: ErrMalformed, msg: "root version 3: "},
		{name: "first link bad", store: rootStore{2: signRoot(t, v2, ks[1]), 3: chain[3]}, want: v1,
			wantErr: ErrRotation, msg: "root version 2: "},
		{name: "version mismatch", store: rootStore{2: signRoot(t, v3, ks...)}, want: v1,
			wantErr: ErrRotation, msg: "does not follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FollowChain(context.Background(), v1, tt.store.fetch)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
			if got == nil || !rootsEqual(got, tt.want) {
				t.Errorf("reached root %+v, want version %d", got, tt.want.Version)
			}
		})
	}
}

type ctxKey struct{}

func TestFollowChainContext(t *testing.T) {
	ks := testKeys(t, 2)
	v1 := testRoot(1, 1, ks[0])
	store := rootStore{2: signRoot(t, testRoot(2, 1, ks[1]), ks...)}

	ctx := context.WithValue(context.Background(), ctxKey{}, "marker")
	var seen []uint64
	fetch := func(ctx context.Context, version uint64) ([]byte, error) {
		if ctx.Value(ctxKey{}) != "marker" {
			t.Errorf("fetch of version %d got another context", version)
		}
		seen = append(seen, version)
		return store.fetch(ctx, version)
	}
	got, err := FollowChain(ctx, v1, fetch)
	if err != nil || got.Version != 2 {
		t.Fatalf("FollowChain = version %v, %v", got, err)
	}
	if fmt.Sprint(seen) != "[2 3]" {
		t.Errorf("fetched versions %v, want [2 3]", seen)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	got, err = FollowChain(cancelled, v1, store.fetch)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "fetch root version 2") {
		t.Errorf("cancelled: err = %v, want context.Canceled while fetching version 2", err)
	}
	if got != v1 {
		t.Errorf("cancelled: returned %+v, want the trusted root", got)
	}
}

func TestFollowChainFetchError(t *testing.T) {
	v1 := testRoot(1, 1, testKey(t, 1))
	boom := errors.New("503 service unavailable")
	got, err := FollowChain(context.Background(), v1, func(context.Context, uint64) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || got != v1 {
		t.Errorf("FollowChain = %v, %v; want trusted root and %v", got, err, boom)
	}
}

func TestFollowChainLimit(t *testing.T) {
	k := testKey(t, 1)
	fetch := func(_ context.Context, version uint64) ([]byte, error) {
		return signRoot(t, testRoot(version, 1, k), k), nil // an endless chain
	}
	got, err := FollowChain(context.Background(), testRoot(1, 1, k), fetch)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if got.Version != 1+MaxRootRotations {
		t.Errorf("stopped at version %d, want %d", got.Version, 1+MaxRootRotations)
	}
}

func TestRotateChecksOldSignaturesBeforePayload(t *testing.T) {
	ks := testKeys(t, 1)
	r := testRoot(1, 1, ks[0])
	garbage := NewEnvelope(RootPayloadType, []byte("not a root")).Marshal()
	if _, err := r.Rotate(garbage); !errors.Is(err, ErrRotation) {
		t.Fatalf("unsigned chain file with an undecodable payload: %v, want ErrRotation", err)
	}
}
