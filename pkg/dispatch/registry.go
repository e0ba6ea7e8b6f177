package dispatch

import (
	"fmt"
	"slices"
	"strings"
)

// Channel is one sales channel: a TOP API method fed by one Kafka topic. Its
// methods are safe for concurrent use; its fields must not be modified.
type Channel struct {
	// ID names the channel in configuration, logs and outcomes, e.g.
	// "omni-saas".
	ID string
	// Method is the TOP API method, e.g. "alibaba.omni.saas.order.create".
	Method string
	// DefaultTopic is the topic used when configuration names none,
	// "orders.<ID>".
	DefaultTopic string
	// Topic is the topic this channel consumes in its Registry.
	Topic string
	// NeedsSession reports whether calls need a seller's session key.
	NeedsSession bool
	// DedupedBy names the request field(s) by which the platform itself deduplicates calls, e.g.
	// "request_no"; "" when it has none (icbu-trade). Without one, a failed call that may have been
	// executed cannot be repeated safely: its outcome is ambiguous.
	DedupedBy string

	spec *spec
}

// specs lists every channel in a fixed order.
var specs = []*spec{aliautoSpec, omniSaasSpec, icbuTradeSpec, haidingSpec, diantaoSpec}

// Registry maps channel ids, topics and methods to channels, so that callers
// never switch on channel names. It is immutable and safe for concurrent use.
// *Registry implements topsim.Rules (NeedsSession, CheckParams).
type Registry struct {
	channels []*Channel // by ID
	byID     map[string]*Channel
	byTopic  map[string]*Channel
	byMethod map[string]*Channel
}

// NewRegistry returns a registry of the enabled channels. topics maps channel
// id → topic: nil enables every channel on its default topic; otherwise only
// the listed channels are enabled, an empty topic meaning the default. It
// fails on an unknown channel id or when two channels would share a topic.
func NewRegistry(topics map[string]string) (*Registry, error) {
	r := &Registry{
		byID:     make(map[string]*Channel),
		byTopic:  make(map[string]*Channel),
		byMethod: make(map[string]*Channel),
	}
	for _, id := range sortedKeys(topics) {
		if !slices.ContainsFunc(specs, func(s *spec) bool { return s.id == id }) {
			return nil, fmt.Errorf("unknown channel %q (known: %s)", id, strings.Join(ChannelIDs(), ", "))
		}
	}
	for _, s := range specs {
		topic, enabled := topics[s.id]
		if topics != nil && !enabled {
			continue
		}
		if topic == "" {
			topic = s.topic
		}
		if other, dup := r.byTopic[topic]; dup {
			return nil, fmt.Errorf("channels %s and %s both use topic %q", other.ID, s.id, topic)
		}
		c := &Channel{ID: s.id, Method: s.method, DefaultTopic: s.topic, Topic: topic, NeedsSession: s.session, DedupedBy: s.dedupedBy, spec: s}
		r.channels = append(r.channels, c)
		r.byID[c.ID] = c
		r.byTopic[topic] = c
		r.byMethod[c.Method] = c
	}
	slices.SortFunc(r.channels, func(a, b *Channel) int { return strings.Compare(a.ID, b.ID) })
	return r, nil
}

// ChannelIDs lists the ids of every channel this package knows, sorted.
func ChannelIDs() []string {
	ids := make([]string, len(specs))
	for i, s := range specs {
		ids[i] = s.id
	}
	slices.Sort(ids)
	return ids
}

// ByTopic returns the enabled channel consuming topic.
func (r *Registry) ByTopic(topic string) (*Channel, bool) {
	c, ok := r.byTopic[topic]
	return c, ok
}

// ByID returns the enabled channel with the id.
func (r *Registry) ByID(id string) (*Channel, bool) {
	c, ok := r.byID[id]
	return c, ok
}

// ByMethod returns the enabled channel calling the TOP method.
func (r *Registry) ByMethod(method string) (*Channel, bool) {
	c, ok := r.byMethod[method]
	return c, ok
}

// Channels returns the enabled channels sorted by id, in a new slice.
func (r *Registry) Channels() []*Channel { return slices.Clone(r.channels) }

// Topics returns the topics of the enabled channels, sorted.
func (r *Registry) Topics() []string { return sortedKeys(r.byTopic) }

// NeedsSession reports whether method needs a seller's session key; known is
// false when no enabled channel calls method.
func (r *Registry) NeedsSession(method string) (needs, known bool) {
	c, ok := r.byMethod[method]
	if !ok {
		return false, false
	}
	return c.NeedsSession, true
}

// CheckParams validates the business parameters of method as they arrive at
// the gateway (objects and lists as JSON text, scalars as strings; the
// gateway's system parameters such as app_key or sign are ignored if
// present) with the same rules as [Channel.Prepare], and returns the key the
// platform de-duplicates on: the channel's default key derived from the
// parameters or, where the parameters hold no key, "sha256:" + hex SHA-256
// of the canonical JSON (see [Fingerprint]) of the request's one object
// parameter. That is always so for icbu-trade, whose key lives in the event
// envelope, and for a mos-haiding order or refund without its number. A
// failed check is a *[FieldError] whose path starts at the parameter name
// ("goods_details[0].price"); an unknown method wraps [ErrUnknownMethod].
func (r *Registry) CheckParams(method string, params map[string]string) (key string, err error) {
	c, ok := r.byMethod[method]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownMethod, method)
	}
	return c.checkParams(params)
}

// Params lists the names of the channel's top-level business parameters (the members of an
// event's request), in the API page's order.
func (c *Channel) Params() []string {
	names := make([]string, len(c.spec.info.fields))
	for i, f := range c.spec.info.fields {
		names[i] = f.name
	}
	return names
}
