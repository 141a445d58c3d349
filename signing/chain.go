package signing

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// RootFetcher returns the encoded envelope of one root version. It returns an
// error matching fs.ErrNotExist when that version has not been published.
type RootFetcher func(ctx context.Context, version uint64) ([]byte, error)

// FollowChain rotates from trusted through versions trusted.Version+1, +2,
// ... for as long as fetch finds them, verifying each step with Rotate, and
// returns the newest root reached (trusted itself when there is none newer).
// Expiry is not checked on the way, as in TUF: call CheckExpiry on the result.
func FollowChain(ctx context.Context, trusted *Root, fetch RootFetcher) (*Root, error) {
	cur := trusted
	for range MaxRootRotations {
		next, err := fetch(ctx, cur.Version+1)
		if errors.Is(err, fs.ErrNotExist) {
			return cur, nil
		}
		if err != nil {
			return cur, fmt.Errorf("fetch root version %d: %w", cur.Version+1, err)
		}
		n, err := cur.Rotate(next)
		if err != nil {
			return cur, fmt.Errorf("root version %d: %w", cur.Version+1, err)
		}
		cur = n
	}
	return cur, fmt.Errorf("%w: more than %d root versions in one update", ErrTooLarge, MaxRootRotations)
}
