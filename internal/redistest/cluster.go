package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of master-only nodes owned by a test. Create it with StartCluster.
type Cluster struct {
	tb    testing.TB
	nodes []*Server
}

// StartCluster starts n (at least 3) redis-server nodes with cluster mode enabled, each on its own free
// loopback port (and a free cluster bus port), joins them with `redis-cli --cluster create ...
// --cluster-replicas 0 --cluster-yes`, and waits until every node reports cluster_state:ok. The nodes are
// killed when the test ends. StartCluster calls tb.Fatal if redis-server or redis-cli is missing or the
// cluster does not form.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", n)
	}
	cli := lookPath(tb, cliBinary)
	c := &Cluster{tb: tb}
	for range n {
		c.nodes = append(c.nodes, start(tb, true, nil))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.SysProcAttr = sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("redistest: %s %s: %v\n%s", cliBinary, strings.Join(args, " "), err, out)
	}
	if err := c.waitOK(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return c
}

// Addrs returns the nodes' addresses, "127.0.0.1:<port>", one per node.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, e.g. to Stop one node. A restarted node comes back with its cluster
// configuration (node id, slots) but without data. The slice must not be modified.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Client returns a new cluster client seeded with every node's address, with ContextTimeoutEnabled set. It
// is closed when the test that started the cluster ends.
func (c *Cluster) Client() *redis.ClusterClient {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	c.tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// waitOK polls CLUSTER INFO on every node until each reports cluster_state:ok.
func (c *Cluster) waitOK() error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		var notOK string
		for _, s := range c.nodes {
			info, err := command(s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				notOK = fmt.Sprintf("%s: %v", s.Addr(), err)
				break
			}
			if state, _ := infoField(info, "cluster_state"); state != "ok" {
				notOK = fmt.Sprintf("%s: cluster_state:%s", s.Addr(), state)
				break
			}
		}
		if notOK == "" {
			return nil
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("cluster not ok within %v: %s", startTimeout, notOK)
		case <-tick.C:
		}
	}
}
