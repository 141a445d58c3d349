package signing

import (
	"errors"
	"fmt"
	"strings"
)

// VerifyEnvelope checks that at least r.Threshold distinct keys of the root
// produced valid signatures over env's pre-authentication encoding, and that
// the payload type is the expected one. It returns the ids of the keys whose
// signatures verified. Signatures by unknown keys and repeated signatures by
// one key are not counted; they only explain the failure when the threshold
// is not met.
func (r *Root) VerifyEnvelope(env *Envelope, payloadType string) ([]KeyID, error) {
	if env.PayloadType != payloadType {
		return nil, fmt.Errorf("%w %q, want %q", ErrPayloadType, env.PayloadType, payloadType)
	}
	if r.Threshold < 1 {
		// A Root built in code, not decoded: without this, zero signatures would do.
		return nil, fmt.Errorf("root version %d: %w: threshold %d, want at least 1", r.Version, ErrMalformed, r.Threshold)
	}
	msg := PAE(env.PayloadType, env.Payload)
	var valid []KeyID
	var problems []string
	bad, unknown := false, 0
	counted := map[KeyID]bool{}
	for _, s := range env.Signatures {
		key, ok := r.Key(s.KeyID)
		switch {
		case !ok:
			unknown++
			problems = append(problems, fmt.Sprintf("key %s is not in root version %d", quoteID(s.KeyID), r.Version))
		case counted[s.KeyID]:
			problems = append(problems, fmt.Sprintf("key %s signed more than once and counts once", s.KeyID))
		case !key.Verify(msg, s.Sig):
			bad = true
			problems = append(problems, fmt.Sprintf("signature by key %s does not verify: payload or signature altered", s.KeyID))
		default:
			counted[s.KeyID] = true
			valid = append(valid, s.KeyID)
		}
	}
	if len(valid) >= r.Threshold {
		return valid, nil
	}
	onlyUnknown := unknown > 0 && unknown == len(env.Signatures)
	return valid, &ThresholdError{Valid: len(valid), Threshold: r.Threshold, Problems: problems, cause: thresholdCause(bad, onlyUnknown)}
}

// thresholdCause names why the threshold was missed: a trusted key's bad
// signature first (tampering), then signatures only by unknown keys.
func thresholdCause(bad, onlyUnknown bool) error {
	switch {
	case bad:
		return ErrBadSignature
	case onlyUnknown:
		return ErrUnknownKey
	default:
		return ErrThreshold
	}
}

// ThresholdError says why an envelope did not gather enough valid signatures.
// It matches ErrThreshold, and also ErrBadSignature when a trusted key's
// signature failed, or ErrUnknownKey when signatures came from unknown keys.
type ThresholdError struct {
	Valid, Threshold int
	Problems         []string
	cause            error
}

func (e *ThresholdError) Error() string {
	msg := fmt.Sprintf("%d valid signature(s) from trusted keys, %d required", e.Valid, e.Threshold)
	if len(e.Problems) > 0 {
		msg += ": " + strings.Join(e.Problems, "; ")
	}
	return msg
}

// Is matches ErrThreshold and the specific cause.
func (e *ThresholdError) Is(target error) bool {
	return target == ErrThreshold || errors.Is(e.cause, target)
}
