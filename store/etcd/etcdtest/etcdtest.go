// Package etcdtest runs etcd clusters inside a test process, through
// go.etcd.io/etcd/server/v3/embed: members on 127.0.0.1 and free ports, data
// in the test's temporary directory, nothing logged, everything closed when
// the test ends. No etcd binary is needed.
package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/apptokens/apptokens/store/etcd"
)

// readyTimeout bounds a member's start (generous for -race on a loaded machine).
const readyTimeout = 30 * time.Second

// A Cluster is an in-process etcd cluster of one or more members.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	members []*member
}

type member struct {
	name           string
	dir            string
	peer, client   url.URL
	initialCluster string
	e              *embed.Etcd   // nil while stopped
	closed         chan struct{} // closed once a stopped member is closed
	proxy          *proxy        // the address clients use
}

// Start starts a cluster of members members (1 or 3, usually) and waits until
// every member is ready; it is stopped when the test ends.
func Start(t testing.TB, members int) *Cluster {
	t.Helper()
	var err error
	// Ports are picked by listening on :0 and closing; another process can
	// take one before etcd binds it, so a failed start is retried on fresh
	// ports.
	for attempt := 0; attempt < 5; attempt++ {
		var c *Cluster
		c, err = start(t, members)
		if err == nil {
			t.Cleanup(c.close)
			return c
		}
	}
	t.Fatalf("etcdtest: starting %d members: %v", members, err)
	return nil
}

func start(t testing.TB, n int) (*Cluster, error) {
	c := &Cluster{t: t}
	root := t.TempDir()
	var initial []string
	for i := 0; i < n; i++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		m := &member{
			name:   fmt.Sprintf("m%d", i),
			dir:    filepath.Join(root, fmt.Sprintf("m%d", i)),
			peer:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])},
			client: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
		}
		initial = append(initial, m.name+"="+m.peer.String())
		c.members = append(c.members, m)
		if m.proxy, err = newProxy(m.client.Host); err != nil {
			c.close()
			return nil, err
		}
	}
	for _, m := range c.members {
		m.initialCluster = strings.Join(initial, ",")
	}
	for i, m := range c.members {
		e, err := embed.StartEtcd(m.config())
		if err != nil {
			c.close()
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		m.e = e
	}
	for i, m := range c.members {
		select {
		case <-m.e.Server.ReadyNotify():
		case err := <-m.e.Err():
			c.close()
			return nil, fmt.Errorf("member %d: %w", i, err)
		case <-time.After(readyTimeout):
			c.close()
			return nil, fmt.Errorf("member %d not ready after %v", i, readyTimeout)
		}
	}
	return c, nil
}

func (m *member) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenPeerUrls = []url.URL{m.peer}
	cfg.AdvertisePeerUrls = []url.URL{m.peer}
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{m.client}
	cfg.InitialCluster = m.initialCluster
	cfg.InitialClusterToken = "etcdtest"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Fast elections, small snapshots and backend, no fsync: a test cluster
	// loses quorum and elects a leader in well under a second.
	cfg.TickMs = 20
	cfg.ElectionMs = 200
	cfg.SnapshotCount = 1000
	cfg.SnapshotCatchUpEntries = 500
	cfg.QuotaBackendBytes = 256 << 20
	cfg.UnsafeNoFsync = true
	cfg.BackendBatchInterval = 10 * time.Millisecond
	return cfg
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Endpoints are the members' client addresses (host:port), stopped ones
// too. Each is a proxy before the member, so that Stop cuts its clients off
// at once.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.proxy.addr())
	}
	return eps
}

// Stop kills member i abruptly: its clients' connections cut, no leadership
// transfer.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.e == nil {
		return
	}
	m.proxy.setDown(true)
	m.e.Server.HardStop()
	// Closing the rest takes a second (idle peer connections); Restart
	// and the end of the test wait for it.
	e, closed := m.e, make(chan struct{})
	m.e, m.closed = nil, closed
	go func() {
		defer close(closed)
		e.Close()
	}()
}

// Restart starts the stopped member i again on its data and ports; it rejoins
// and catches up. It waits until the member's server is ready (which needs a
// quorum).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.e != nil {
		return
	}
	<-m.closed
	var e *embed.Etcd
	var err error
	// The ports were released by Stop; one may be briefly unavailable.
	for attempt := 0; attempt < 50; attempt++ {
		e, err = embed.StartEtcd(m.config())
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("etcdtest: restarting member %d: %v", i, err)
	}
	m.e = e
	select {
	case <-e.Server.ReadyNotify():
		// Clients reach it once it has caught up with the cluster.
		m.proxy.setDown(false)
	case err := <-e.Err():
		c.t.Fatalf("etcdtest: restarting member %d: %v", i, err)
	case <-time.After(readyTimeout):
		c.t.Fatalf("etcdtest: member %d not ready %v after restart", i, readyTimeout)
	}
}

// Compact compacts the cluster's history up to its current revision, so that
// watches from before it see a compacted revision.
func (c *Cluster) Compact(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	var s *embed.Etcd
	for _, m := range c.members {
		if m.e != nil {
			s = m.e
			break
		}
	}
	c.mu.Unlock()
	if s == nil {
		t.Fatal("etcdtest: no member running to compact")
	}
	compact(t, s)
}

func (c *Cluster) close() {
	for i, m := range c.members {
		c.Stop(i)
		if m.closed != nil {
			<-m.closed
		}
		if m.proxy != nil {
			m.proxy.close()
		}
	}
}

// Engine opens an engine on every endpoint of the cluster under prefix, as
// node node; it is closed when the test ends.
func (c *Cluster) Engine(t testing.TB, prefix, node string) *etcd.Engine {
	t.Helper()
	return open(t, c.Endpoints(), prefix, node)
}

func open(t testing.TB, endpoints []string, prefix, node string) *etcd.Engine {
	t.Helper()
	e, err := etcd.Open(etcd.Options{Endpoints: endpoints, Prefix: prefix, Node: node})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// shared is the one single-member cluster a test process starts at the
// first Shared call, for tests that need speed rather than their own cluster.
// It lives until the process exits (its data in a directory of its own,
// removed by SharedMain when the process ends).
var shared struct {
	once sync.Once
	dir  string
	e    *embed.Etcd
	err  error
}

// Shared returns the endpoints of this test process's shared single-member
// cluster and a fresh prefix no other call gets. Tests that use it must run
// through SharedMain (TestMain) so that the server is closed at exit.
func Shared(t testing.TB) (endpoints []string, prefix string) {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "etcdtest-shared-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		for attempt := 0; attempt < 5; attempt++ {
			var ports []int
			ports, err = freePorts(2)
			if err != nil {
				break
			}
			m := &member{
				name:   "shared",
				dir:    filepath.Join(dir, fmt.Sprint(attempt)),
				peer:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])},
				client: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
			}
			m.initialCluster = m.name + "=" + m.peer.String()
			var e *embed.Etcd
			e, err = embed.StartEtcd(m.config())
			if err != nil {
				continue
			}
			select {
			case <-e.Server.ReadyNotify():
				shared.e = e
				return
			case err = <-e.Err():
			case <-time.After(readyTimeout):
				err = fmt.Errorf("not ready after %v", readyTimeout)
			}
			e.Close()
		}
		shared.err = err
	})
	if shared.err != nil {
		t.Fatalf("etcdtest: starting the shared member: %v", shared.err)
	}
	return []string{shared.e.Config().ListenClientUrls[0].Host}, "/t" + randomHex() + "/"
}

// SharedEngine opens an engine on the shared cluster under a fresh prefix.
func SharedEngine(t testing.TB, node string) *etcd.Engine {
	t.Helper()
	eps, prefix := Shared(t)
	return open(t, eps, prefix, node)
}

// SharedMain runs a test binary's tests (call it from TestMain) and closes
// the shared member, if one was started, before the process exits.
func SharedMain(m *testing.M) int {
	code := m.Run()
	if shared.e != nil {
		shared.e.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func compact(t testing.TB, s *embed.Etcd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rev := s.Server.KV().Rev()
	if _, err := s.Server.Compact(ctx, &pb.CompactionRequest{Revision: rev, Physical: true}); err != nil {
		t.Fatalf("etcdtest: compacting at %d: %v", rev, err)
	}
}
