package manifest

import "strconv"

// ChannelID names a product's channel: what an agent subscribes to, and
// the line of releases that sequences number. Its JSON and TOML keys are
// "product" and "channel", as in the manifest, the agent's configuration
// and the peer protocol.
type ChannelID struct {
	Product string `json:"product" toml:"product"`
	Channel string `json:"channel" toml:"channel"`
}

// String is "product/channel".
func (c ChannelID) String() string { return c.Product + "/" + c.Channel }

// Release names the channel's release with sequence seq.
func (c ChannelID) Release(seq uint64) ReleaseID { return ReleaseID{ChannelID: c, Sequence: seq} }

// Valid reports whether both names are valid (ValidName).
func (c ChannelID) Valid() bool { return ValidName(c.Product) && ValidName(c.Channel) }

// ReleaseID names one release: a channel and a sequence. Embedded in a
// struct, it encodes as the keys "product", "channel" and "sequence".
type ReleaseID struct {
	ChannelID
	Sequence uint64 `json:"sequence"`
}

// String is "product/channel/sequence".
func (r ReleaseID) String() string {
	return r.ChannelID.String() + "/" + strconv.FormatUint(r.Sequence, 10)
}

// ID names the release m is the payload of.
func (m *Manifest) ID() ReleaseID {
	return ReleaseID{ChannelID: ChannelID{Product: m.Product, Channel: m.Channel}, Sequence: m.Sequence}
}

// ChannelID names the channel of the release m is the payload of.
func (m *Manifest) ChannelID() ChannelID { return ChannelID{Product: m.Product, Channel: m.Channel} }
