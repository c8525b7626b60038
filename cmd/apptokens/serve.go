package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/internal/cidr"
	"github.com/apptokens/apptokens/internal/config"
	"github.com/apptokens/apptokens/internal/gate"
	"github.com/apptokens/apptokens/internal/sshd"
	"github.com/apptokens/apptokens/internal/webhook"
)

type serveFlags struct {
	sshAddr, httpAddr string
	authorizedKeys    string
	hostKey           string
	trustedProxies    []string
	inactiveAfter     string
	deleteAfter       string
	// setDeleteAfter: --delete-after was given (flag, file or environment).
	setDeleteAfter    bool
	logFormat         string
	maxSSHConnections int
	sshIdleTimeout    time.Duration
	sshLoginGrace     time.Duration
	maxSSHSessions    int
	shutdownTimeout   time.Duration
	// Proxy mode (issue 13).
	upstream, access  string
	routes            []string
	passAuthorization bool
	metricsAddr       string
	// Lifecycle warnings (issue 11).
	webhooks          []string
	webhookSecretFile string
	// node names this serve among the nodes sharing an etcd store.
	node string
}

// serveCmd is `serve`; look gives config.toml's TUI settings once they are
// read (columns and chart window apply to every SSH session's TUI too).
func serveCmd(root *cobra.Command, where *storeFlags, look func() config.TUI) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--ssh ADDR] [--http ADDR] [--authorized-keys FILE] [--host-key FILE] [--trusted-proxy CIDR]... [--inactive-after DURATION] [--delete-after DURATION] [--ssh-login-grace 30s] [--max-ssh-sessions-per-conn 4] [--upstream URL [--access ACCESS] | --route PREFIX=URL[,ACCESS]...] [--pass-authorization] [--webhook URL]... [--webhook-secret-file FILE]",
		Short: "Serve the TUI to admins over SSH and run the HTTP token gate, on one database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := root.PersistentFlags().GetString("db")
			if err != nil {
				return err
			}
			f.setDeleteAfter = cmd.Flags().Changed("delete-after")
			return serve(cmd.Context(), where, where.location(db), f, look(), cmd.Flags().Changed("inactive-after"))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.sshAddr, "ssh", "127.0.0.1:23234", "SSH listen address")
	fl.StringVar(&f.httpAddr, "http", "127.0.0.1:8080", "HTTP token gate listen address")
	fl.StringVar(&f.authorizedKeys, "authorized-keys", filepath.Join(configDir(), "authorized_keys"), "OpenSSH authorized_keys file of the admins")
	fl.StringVar(&f.hostKey, "host-key", filepath.Join(configDir(), "ssh_host_ed25519_key"), "SSH host key (ed25519, generated on first start)")
	fl.StringArrayVar(&f.trustedProxies, "trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable)")
	fl.StringVar(&f.inactiveAfter, "inactive-after", "30d", "tokens unused this long become Inactive (e.g. 30d, 720h; 0 turns it off)")
	fl.StringVar(&f.deleteAfter, "delete-after", "90d", "tokens unused this long are deleted for good by the sweep, audited (e.g. 90d; 0 turns it off)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text (logfmt) or json")
	fl.IntVar(&f.maxSSHConnections, "max-ssh-connections", 32, "cap on concurrent authenticated SSH connections")
	fl.DurationVar(&f.sshIdleTimeout, "ssh-idle-timeout", 30*time.Minute, "close SSH connections idle this long")
	fl.DurationVar(&f.sshLoginGrace, "ssh-login-grace", 30*time.Second, "close SSH connections that have not authenticated within this time")
	fl.IntVar(&f.maxSSHSessions, "max-ssh-sessions-per-conn", 4, "cap on concurrent sessions (channels) on one SSH connection")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long to wait for sessions and requests on shutdown")
	fl.StringVar(&f.upstream, "upstream", "", "proxy mode: check each request's token, then forward it to this API (http://HOST:PORT)")
	fl.StringVar(&f.access, "access", "", "with --upstream: the access type a token needs (default: any)")
	fl.StringArrayVar(&f.routes, "route", nil, "proxy mode for several APIs: PREFIX=URL[,ACCESS] (repeatable; longest prefix wins)")
	fl.BoolVar(&f.passAuthorization, "pass-authorization", false, "proxy mode: forward the client's Authorization header to the upstream")
	fl.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus /metrics on this address instead of the gate's listener")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "POST lifecycle events (token.expiring, token.revoked_by_report, …) as JSON to this URL (repeatable)")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the key of the webhooks' X-Apptokens-Signature HMAC-SHA256 (without it, webhooks are unsigned)")
	fl.StringVar(&f.node, "node", "", "with an etcd store: this node's name among the gates sharing it, kept across restarts (default: host name and --http port)")
	return cmd
}

// configDir is $XDG_CONFIG_HOME/apptokens, else ~/.config/apptokens.
func configDir() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "apptokens")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "apptokens-config"
	}
	return filepath.Join(home, ".config", "apptokens")
}

// parseDays accepts Go durations and a whole number of days ("30d") for
// --inactive-after.
func parseDays(s string) (time.Duration, error) { return parseDaysFlag("--inactive-after", s) }

// parseDaysFlag accepts Go durations and a whole number of days ("30d") for
// the flag named flag; "0" is 0 (off); negative spans are refused.
func parseDaysFlag(flag, s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s %q: want a duration such as 30d or 720h", flag, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration such as 30d or 720h", flag, s)
	}
	return d, nil
}

func parseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := cidr.Parse(part) // as authorized_keys from= reads it
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxy %q: %w", part, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// checkSSHLimits refuses limits that would turn a limit off or lock everyone out.
func checkSSHLimits(f serveFlags) error {
	switch {
	case f.sshLoginGrace <= 0:
		return fmt.Errorf("--ssh-login-grace %s: want a positive duration such as 30s", f.sshLoginGrace)
	case f.maxSSHSessions < 1:
		return fmt.Errorf("--max-ssh-sessions-per-conn %d: want 1 or more", f.maxSSHSessions)
	case f.maxSSHConnections < 1:
		return fmt.Errorf("--max-ssh-connections %d: want 1 or more", f.maxSSHConnections)
	}
	return nil
}

// parseRoutes reads the proxy-mode flags: --upstream [--access] is the route
// for "/", each --route another one.
func parseRoutes(f serveFlags) ([]gate.Route, error) {
	var routes []gate.Route
	if f.upstream != "" {
		r, err := gate.NewRoute("/", f.upstream, f.access)
		if err != nil {
			return nil, fmt.Errorf("--upstream: %w", err)
		}
		routes = append(routes, r)
	} else if f.access != "" {
		return nil, errors.New("--access needs --upstream (with --route, give the access after the URL: PREFIX=URL,ACCESS)")
	}
	for _, s := range f.routes {
		r, err := gate.ParseRoute(s)
		if err != nil {
			return nil, fmt.Errorf("--route: %w", err)
		}
		routes = append(routes, r)
	}
	if f.passAuthorization && len(routes) == 0 {
		return nil, errors.New("--pass-authorization needs --upstream or --route")
	}
	if len(routes) > 0 {
		if err := gate.CheckRoutes(routes); err != nil {
			return nil, fmt.Errorf("--route: %w", err)
		}
	}
	return routes, nil
}

// parseWebhooks reads --webhook and --webhook-secret-file: nil when no
// webhook is given. An unreadable or empty secret file is an error.
func parseWebhooks(f serveFlags) (*webhook.Config, error) {
	if len(f.webhooks) == 0 {
		if f.webhookSecretFile != "" {
			return nil, errors.New("--webhook-secret-file needs --webhook")
		}
		return nil, nil
	}
	if len(f.webhooks) > webhook.MaxURLs {
		return nil, fmt.Errorf("--webhook: %d URLs: at most %d", len(f.webhooks), webhook.MaxURLs)
	}
	for _, u := range f.webhooks {
		if _, err := webhook.ParseURL(u); err != nil {
			return nil, fmt.Errorf("--webhook: %w", err)
		}
	}
	cfg := &webhook.Config{URLs: f.webhooks}
	if f.webhookSecretFile != "" {
		key, err := webhook.ReadSecret(f.webhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		cfg.Secret = key
	}
	return cfg, nil
}

// redactURL is u with any password hidden, for logs.
func redactURL(u string) string {
	if p, err := webhook.ParseURL(u); err == nil {
		return p.Redacted()
	}
	return "(invalid URL)"
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "text", "logfmt":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// serve runs on the store at loc (storeFlags.location), opened through where.
func serve(ctx context.Context, where *storeFlags, loc string, f serveFlags, set config.TUI, setPolicy bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	logger, err := newLogger(f.logFormat)
	if err != nil {
		return err
	}
	if err := checkSSHLimits(f); err != nil {
		return err
	}
	inactive, err := parseDays(f.inactiveAfter)
	if err != nil {
		return err
	}
	deleteAfter, err := parseDaysFlag("--delete-after", f.deleteAfter)
	if err != nil {
		return err
	}
	trusted, err := parseTrusted(f.trustedProxies)
	if err != nil {
		return err
	}
	routes, err := parseRoutes(f)
	if err != nil {
		return err
	}
	hooks, err := parseWebhooks(f)
	if err != nil {
		return err
	}
	node := f.node
	if node == "" {
		node = serveNode(f.httpAddr)
	}
	if err := checkNode(node); err != nil {
		return err
	}
	// Logs go to stderr, often a pipe (serve 2>&1 | tee log). When its reader
	// dies first (Ctrl-C reaches tee too), a write would raise SIGPIPE, and Go
	// exits on SIGPIPE for fd 1 and 2 unless it is handled: ignored, the write
	// fails with EPIPE, the log line is lost, and the shutdown goes on.
	signal.Ignore(syscall.SIGPIPE)
	// With webhooks, the store's sweep and leak reports queue their events
	// for the sender.
	where.webhooks = hooks != nil
	st, err := where.openStore(loc, node)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.Error("close the store", "err", err.Error())
		}
	}()
	if err := st.Writable(); err != nil {
		// On a full disk serve starts read-only: the gate verifies and counts
		// usage in memory; changes are refused until space returns.
		logger.Warn("starting read-only: changes are refused until space is freed", "err", err.Error())
	}
	if setPolicy && st.InactiveAfter() != inactive {
		if err := st.SetInactiveAfter(inactive); err != nil {
			return err
		}
	}
	if f.setDeleteAfter && st.DeleteAfter() != deleteAfter {
		if err := st.SetDeleteAfter(deleteAfter); err != nil {
			return err
		}
	}

	// One registry per serve: the gate's and the SSH server's metrics, the Go runtime's and the process's.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	sshSrv, err := sshd.New(sshd.Config{
		Addr: f.sshAddr, HostKeyPath: f.hostKey, AuthorizedKeysPath: f.authorizedKeys,
		Store: st, Logger: logger, IdleTimeout: f.sshIdleTimeout, MaxConnections: f.maxSSHConnections,
		LoginGrace: f.sshLoginGrace, MaxSessionsPerConn: f.maxSSHSessions, Metrics: reg,
		Columns: set.Columns, ChartWindow: set.Window(),
	})
	if err != nil {
		return err
	}
	gateCfg := gate.Config{Store: st, TrustedProxies: trusted, Logger: logger, Metrics: reg}
	if f.metricsAddr == "" {
		gateCfg.MetricsHandler = metricsHandler
	}
	g, err := gate.New(gateCfg)
	if err != nil {
		return err
	}
	var sender *webhook.Sender
	if hooks != nil {
		hooks.Outbox, hooks.Logger, hooks.Metrics = st, logger, reg
		if sender, err = webhook.New(*hooks); err != nil {
			return err
		}
		if hooks.Secret == nil {
			logger.Warn("webhooks are sent unsigned: receivers cannot tell them from forgeries; give --webhook-secret-file")
		}
	}
	var proxyMode http.Handler
	if len(routes) > 0 {
		if proxyMode, err = g.Proxy(gate.ProxyConfig{Routes: routes, PassAuthorization: f.passAuthorization}); err != nil {
			return fmt.Errorf("--route: %w", err)
		}
	}
	// Go's default GOGC stays: with the shared token set, 100,000 tokens and 30
	// sessions measure within the bars at 100% growth too (66 MiB idle, +43 MiB),
	// and proxy mode allocates per request, so a lower GOGC would cost it CPU.
	// Building the gate's index read every token into transient structures,
	// garbage now: give that memory back to the OS at once rather than over
	// minutes (100,000 tokens: 197 MiB resident before, the steady state after).
	debug.FreeOSMemory()
	sshLn, err := net.Listen("tcp", f.sshAddr)
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	httpLn, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		sshLn.Close()
		return fmt.Errorf("http: %w", err)
	}
	var metricsSrv *http.Server
	var metricsLn net.Listener
	if f.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", f.metricsAddr); err != nil {
			sshLn.Close()
			httpLn.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		metricsSrv = gate.NewServer(f.metricsAddr, mux)
	}
	// Tell local commands refused by the lock what to run instead.
	if err := st.Announce(sshLn.Addr().String()); err != nil {
		logger.Warn("announce the SSH address in the lock file", "err", err.Error())
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	gateCtx, stopGate := context.WithCancel(context.Background())
	gateDone := make(chan error, 1)
	go func() { gateDone <- g.Run(gateCtx) }()
	senderDone := make(chan struct{})
	if sender != nil {
		// One node of a cluster sends (the store's election; with one
		// process, this one), so that each event goes out once.
		go func() {
			defer close(senderDone)
			err := st.Lead(gateCtx, "webhooks", func(ctx context.Context) { _ = sender.Run(ctx) })
			if err != nil {
				logger.Error("webhook: the senders' election failed; this node will not send", "err", err.Error())
			}
		}()
	} else {
		close(senderDone)
	}

	httpSrv := gate.NewServer(f.httpAddr, g.Handler())
	if proxyMode != nil {
		httpSrv = gate.NewProxyServer(f.httpAddr, proxyMode)
	}
	errc := make(chan error, 3)
	if metricsSrv != nil {
		go func() {
			if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	go func() {
		if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	go func() {
		if err := sshSrv.Serve(sshLn); err != nil {
			errc <- fmt.Errorf("ssh: %w", err)
		}
	}()
	metricsAt := httpLn.Addr().String()
	if metricsLn != nil {
		metricsAt = metricsLn.Addr().String()
	}
	logger.Info("apptokens serve started", "ssh", sshLn.Addr().String(), "http", httpLn.Addr().String(), "metrics", metricsAt,
		"store", loc, "node", node, "inactive_after", st.InactiveAfter().String(), "delete_after", st.DeleteAfter().String(), "trusted_proxies", len(trusted))
	for _, u := range f.webhooks {
		logger.Info("webhook: sending lifecycle events", "url", redactURL(u))
	}
	for _, r := range routes {
		logger.Info("proxy mode: forwarding", "prefix", r.Prefix, "upstream", r.Upstream.Redacted(), "access", string(r.Access))
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
		logger.Error("server failed", "err", runErr.Error())
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		logger.Warn("http shutdown", "err", err.Error())
		_ = httpSrv.Close()
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(sctx); err != nil {
			_ = metricsSrv.Close()
		}
	}
	if err := sshSrv.Shutdown(sctx); err != nil {
		logger.Warn("ssh shutdown", "err", err.Error())
	}
	stopGate()
	<-senderDone
	if err := <-gateDone; err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("gate stopped", "err", err.Error())
		if runErr == nil {
			runErr = err
		}
	}
	logger.Info("apptokens serve stopped")
	return runErr
}
