package dedupe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/pkg/dedupe"
)

// A first delivery claims the key, calls the platform and completes it; a redelivery gets the stored
// outcome back; the same key with another request is a conflict.
func Example() {
	m := miniredis.NewMiniRedis() // any Redis: a *redis.Client, *redis.ClusterClient, ...
	if err := m.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()

	store, err := dedupe.New(rdb, dedupe.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	key := dedupe.Key{Channel: "omni-saas", ID: "REQ-3436967"}

	c, err := store.Claim(ctx, key, "sha256-of-request", "pod-a/1/attempt-1", 30*time.Second)
	if err != nil {
		fmt.Println(err) // e.g. Redis unreachable: do not call the platform, retry later
		return
	}
	fmt.Println(c.State, c.Token)
	// ... call the platform, Renew while retrying ...
	if err := store.Complete(ctx, key, "pod-a/1/attempt-1", c.Token, []byte(`{"status":"succeeded"}`), 0); err != nil {
		fmt.Println(err) // ErrLeaseLost: someone else took over; do not publish this result
		return
	}

	dup, _ := store.Claim(ctx, key, "sha256-of-request", "pod-b/7/attempt-1", 30*time.Second)
	fmt.Println(dup.State, string(dup.Outcome))

	other, _ := store.Claim(ctx, key, "sha256-of-another-request", "pod-b/7/attempt-2", 30*time.Second)
	fmt.Println(other.State)
	// Output:
	// claimed 1
	// done {"status":"succeeded"}
	// conflict
}
