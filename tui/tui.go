// Package tui is the terminal interface of apptokens: a root model that routes
// between the tokens table, the form, the usage and audit screens, and holds one
// modal (a confirmation or the one-time reveal). The same code serves the local
// terminal and every SSH session: everything comes from Deps, nothing is global.
package tui

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/audit"
	"github.com/apptokens/apptokens/tui/chart"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/confirm"
	"github.com/apptokens/apptokens/tui/detail"
	"github.com/apptokens/apptokens/tui/form"
	"github.com/apptokens/apptokens/tui/keys"
	"github.com/apptokens/apptokens/tui/recent"
	"github.com/apptokens/apptokens/tui/reveal"
	"github.com/apptokens/apptokens/tui/styles"
	"github.com/apptokens/apptokens/tui/table"
	"github.com/apptokens/apptokens/tui/tokens"
	"github.com/apptokens/apptokens/tui/tokenset"
	"github.com/apptokens/apptokens/tui/usage"
)

// Store is the part of *store.Store the TUI uses.
type Store interface {
	EachToken(fn func(store.Token) error) error
	GetByID(id string) (store.Token, error)
	Create(actor store.Actor, in store.NewToken) (store.Created, error)
	// The screens act on the tokens they picked by ID (DESIGN "Data rules").
	EditID(actor store.Actor, id string, e store.Edit) (store.Token, error)
	SetActiveIDs(actor store.Actor, ids []string, active bool) (int, error)
	DeleteIDs(actor store.Actor, ids []string) (int, error)
	MaxBatch() int
	RotateID(actor store.Actor, id string, grace time.Duration) (store.Created, error)
	SetAllowedID(actor store.Actor, id string, cidrs []string, allow bool) (int, error)
	NetworkRulesID(id string) (store.NetworkRules, error)
	UsageID(id string) ([]store.Usage, error)
	SetBlockedID(actor store.Actor, id string, ips []string, blocked bool) (int, error)
	Audit(limit int) ([]store.Event, error)
	InactiveAfter() time.Duration
	DeleteAfter() time.Duration
	Subscribe() *store.Subscription
	UsageSeriesID(id, ip string, since time.Time) ([]store.HourCount, error)
}

// Deps is everything one TUI session is built from.
type Deps struct {
	Store Store
	// Actor is who acts, for the audit trail.
	Actor store.Actor
	// Renderer builds every style (one per SSH session).
	Renderer *lipgloss.Renderer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Clipboard receives the OSC 52 copy sequence (stdout locally, the SSH session
	// remotely); nil means copying is not available.
	Clipboard io.Writer
	// Logger receives what the session cannot show, such as a recovered panic
	// (over SSH: the server's logger with the session's identity); nil discards.
	Logger *slog.Logger
	// Tokens is the process's shared token set, built once over Store with
	// tokenset.NewHub and given to every session; nil gives this session a Hub
	// of its own (one session per process: tests, tools).
	Tokens *tokenset.Hub
	// ChartWindow is the usage chart's window when a usage screen opens: 24 h
	// (also for zero), 7 d or 30 d; other spans take the next longer window.
	ChartWindow time.Duration
	// Recent holds every token's last 24 hours for the tokens table's
	// sparkline column: one per process (recent.New), shared by every
	// session; nil hides the column.
	Recent *recent.Counts
	// Columns are the tokens screen's columns and their order, by
	// config.toml's names (name, state, access, days, expires, created, last_used,
	// last_24h, hint, description); nil shows them all.
	Columns []string
}

type screen int

const (
	screenTokens screen = iota
	screenForm
	screenUsage
	screenAudit
	screenDetail
)

// Model is the root model.
type Model struct {
	deps Deps
	ctx  *common.Context
	keys keys.Global
	help help.Model
	hub  *tokenset.Hub
	// watch is this session's subscription to the hub: the shared token set
	// and the store's changes. watchMu guards it: an SSH host calls Close from
	// its own goroutine.
	watch   *tokenset.Watch
	watchMu sync.Mutex
	closed  bool // Close was called: a watch started after it is closed at once
	// done is closed by Close: the wait for the sparklines' counts ends.
	done     chan struct{}
	doneOnce sync.Once

	tokens *tokens.Model
	form   *form.Model   // open form, or nil
	usage  *usage.Model  // open usage screen, or nil
	audit  *audit.Model  // open audit screen, or nil
	detail *detail.Model // open detail screen, or nil
	active screen
	modal  common.Component // open modal, or nil

	// keys waiting for the command of an earlier key of the same burst: they
	// are applied, in order, once its message has been handled (see keyMsgs).
	pendingKeys []tea.KeyMsg
	waitingKeys bool

	status    string
	statusErr bool
	// lastViewPanic is the last panic of View, logged once.
	lastViewPanic string
	width         int
	height        int
	bodyH         int
}

// Default size until the terminal reports its own.
const (
	defaultWidth  = 80
	defaultHeight = 24
)

// New returns the root model. Its Init watches the shared token set (and the
// store's changes through it); quitting (or Close) ends the watch.
func New(d Deps) tea.Model {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Renderer == nil {
		d.Renderer = lipgloss.DefaultRenderer()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	ctx := &common.Context{Styles: styles.New(d.Renderer), Actor: d.Actor, Now: d.Now}
	if d.Recent != nil {
		ctx.Sparklines = d.Recent
	}
	h := help.New()
	h.Styles = ctx.Styles.Help
	if d.Tokens == nil {
		d.Tokens = tokenset.NewHub(d.Store)
	}
	m := &Model{
		hub:    d.Tokens,
		deps:   d,
		ctx:    ctx,
		keys:   keys.DefaultGlobal(),
		help:   h,
		tokens: tokens.New(ctx, d.Store),
		width:  defaultWidth,
		height: defaultHeight,
		done:   make(chan struct{}),
	}
	m.tokens.SetColumns(d.Columns)
	m.layout()
	return m
}

// feedMsg carries what the watch delivered.
type feedMsg struct {
	update tokenset.Update
	closed bool
}

// waitForChange blocks on the watch (not polling) until the hub has a new
// token set or changes, then takes them.
func waitForChange(w *tokenset.Watch) tea.Cmd {
	return func() tea.Msg {
		if _, ok := <-w.C(); !ok {
			return feedMsg{closed: true}
		}
		return feedMsg{update: w.Take()}
	}
}

// watching is the session's watch of the hub, started on first use.
func (m *Model) watching() *tokenset.Watch {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watch == nil {
		m.watch = m.hub.Watch()
		if m.closed {
			// The session ended before Init: hold nothing of the hub.
			m.watch.Close()
		}
	}
	return m.watch
}

// Init watches the shared token set; the first update shows the tokens.
func (m *Model) Init() tea.Cmd {
	return safeCmd(tea.Batch(m.tokens.Init(), waitForChange(m.watching()), m.startRecent()))
}

// Close ends the watch. Quitting calls it; a host that ends the program some
// other way (an SSH session closing) should call it too.
func (m *Model) Close() error {
	m.doneOnce.Do(func() { close(m.done) })
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	m.closed = true
	if m.watch != nil {
		m.watch.Close()
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	_ = m.Close()
	return tea.Quit
}

// current is the active screen.
func (m *Model) current() common.Component {
	switch m.active {
	case screenForm:
		if m.form != nil {
			return m.form
		}
	case screenUsage:
		if m.usage != nil {
			return m.usage
		}
	case screenAudit:
		if m.audit != nil {
			return m.audit
		}
	case screenDetail:
		if m.detail != nil {
			return m.detail
		}
	}
	return m.tokens
}

// Update routes a message: window size, then the modal (all keys while open),
// then global keys, then messages between screens, then the active screen.
// A panic while doing so, or in a command it returns, is logged and shown; the
// session goes on.
func (m *Model) Update(msg tea.Msg) (_ tea.Model, cmd tea.Cmd) {
	defer func() {
		if r := recover(); r != nil {
			m.recovered("update", r, debug.Stack())
			m.pendingKeys, m.waitingKeys = nil, false
			cmd = nil
		}
	}()
	if p, ok := msg.(panicMsg); ok {
		// Keys waiting for that command still resume: tea.Sequence goes on.
		m.recovered(p.where, p.value, p.stack)
		return m, nil
	}
	_, cmd = m.update(msg)
	return m, safeCmd(cmd)
}

func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(1, msg.Width), max(1, msg.Height)
		m.layout()
		return m, nil
	case tea.KeyMsg:
		return m, m.keyMsgs(splitKey(msg))
	case resumeKeysMsg:
		m.waitingKeys = false
		return m, m.keyMsgs(nil)
	case tea.MouseMsg:
		if m.modal != nil || msg.Y >= m.bodyH {
			// The status and help lines are not the screen's.
			return m, nil
		}
		_, cmd := m.current().Update(msg)
		return m, cmd
	case recentMsg:
		return m, m.waitRecent()
	case feedMsg:
		if msg.closed {
			return m, nil
		}
		return m, tea.Batch(m.broadcast(changesMsg(msg.update)), waitForChange(m.watching()))
	}
	return m, m.route(msg)
}

// interrupt is ctrl+c: it quits unless the modal or the screen has something
// to lose (the one sight of a secret, typed changes), where it asks instead as
// closing there asks. A question already open over a form is asked again
// with quitting as its answer.
func (m *Model) interrupt() tea.Cmd {
	targets := []common.Component{m.current()}
	if m.modal != nil {
		targets = []common.Component{m.modal, m.current()}
	}
	for _, c := range targets {
		if i, ok := c.(common.Interrupter); ok {
			if cmd, ask := i.Interrupt(); ask {
				return cmd
			}
		}
	}
	return m.quit()
}

// resumeKeysMsg applies the keys that waited for an earlier key's command.
type resumeKeysMsg struct{}

// keyMsgs applies keys in order, each as if it had come alone. A key whose
// command has a message for the root (n opens the form through one) holds
// the keys after it, and any key that arrives meanwhile, until that message
// has been handled: "nabc" in one read types "abc" into the new form.
//
// ctrl+c never waits: it is the way out of a command that hangs.
func (m *Model) keyMsgs(ks []tea.KeyMsg) tea.Cmd {
	if m.waitingKeys {
		for _, k := range ks {
			if key.Matches(k, m.keys.ForceQuit) {
				return m.interrupt()
			}
		}
		m.pendingKeys = append(m.pendingKeys, ks...)
		return nil
	}
	m.pendingKeys = append(m.pendingKeys, ks...)
	for len(m.pendingKeys) > 0 {
		k := m.pendingKeys[0]
		m.pendingKeys = m.pendingKeys[1:]
		cmd := m.key(k)
		if len(m.pendingKeys) == 0 {
			m.pendingKeys = nil
			return cmd
		}
		if cmd != nil {
			m.waitingKeys = true
			return tea.Sequence(cmd, func() tea.Msg { return resumeKeysMsg{} })
		}
	}
	return nil
}

// changesMsg is what the screens are told of an update.
func changesMsg(u tokenset.Update) common.ChangesMsg {
	return common.ChangesMsg{Changes: u.Changes, Reload: u.Reload, Tokens: u.Tokens, TokensErr: u.Err, TokensRetryIn: u.RetryIn}
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	if key.Matches(msg, m.keys.ForceQuit) {
		return m.interrupt()
	}
	m.status, m.statusErr = "", false
	if msg.Paste {
		return m.paste(msg)
	}
	if m.modal != nil {
		_, cmd := m.modal.Update(msg)
		return cmd
	}
	cur := m.current()
	if !cur.Typing() {
		switch {
		case key.Matches(msg, m.keys.Help):
			m.help.ShowAll = !m.help.ShowAll
			m.layout()
			return nil
		case m.active != screenForm && key.Matches(msg, m.keys.Quit):
			return m.quit()
		case m.active != screenForm && key.Matches(msg, m.keys.Audit):
			m.audit = audit.New(m.ctx, m.deps.Store)
			m.usage, m.detail = nil, nil
			m.active = screenAudit
			m.layout()
			return m.audit.Init()
		}
	}
	_, cmd := cur.Update(msg)
	return cmd
}

// paste gives a bracketed paste to the focused text field, as text; where no
// field has focus it is dropped, and the status line says so (pasted text must
// never run as keys).
func (m *Model) paste(msg tea.KeyMsg) tea.Cmd {
	target := m.current()
	if m.modal != nil {
		target = m.modal
	}
	if !target.Typing() {
		m.status, m.statusErr = "Paste ignored: no text field has focus", true
		return nil
	}
	_, cmd := target.Update(msg)
	return cmd
}

// route handles the messages screens send to the root; anything else (load
// results, cursor blinks) goes to every open component, which ignore what is
// not theirs.
func (m *Model) route(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case common.StatusMsg:
		if msg.Err != nil {
			m.status, m.statusErr = msg.Err.Error(), true
		} else {
			m.status, m.statusErr = msg.Text, false
		}
		return nil
	case common.ConfirmMsg:
		return m.openModal(confirm.New(m.ctx, msg))
	case common.PromptMsg:
		return m.openModal(confirm.NewPrompt(m.ctx, msg))
	case common.QuitMsg:
		return m.quit()
	case common.CloseModalMsg:
		m.modal = nil
		m.layout()
		return nil
	case form.CreatedMsg:
		c := msg.Created
		m.status, m.statusErr = "Token "+c.Token.Name+" created", false
		m.tokens.Focus(c.Token.ID)
		return m.openModal(reveal.New(m.ctx, c.Token.Name, c.Secret, m.deps.Clipboard))
	case common.RotatedMsg:
		m.status, m.statusErr = "Token "+msg.Token.Name+" rotated", false
		return m.openModal(reveal.NewRotated(m.ctx, msg.Token.Name, msg.Secret, m.deps.Clipboard, msg.OldUntil))
	case common.OpenFormMsg:
		m.form = form.New(m.ctx, m.deps.Store, msg.Edit, m.tokens.NameTaken)
		m.active = screenForm
		m.layout()
		return m.form.Init()
	case common.CloseFormMsg:
		m.form = nil
		m.active = screenTokens
		m.layout()
		return nil
	case common.OpenDetailMsg:
		m.detail = detail.New(m.ctx, m.deps.Store, msg.ID, msg.Name)
		m.usage, m.audit = nil, nil
		m.active = screenDetail
		m.layout()
		return m.detail.Init()
	case common.OpenUsageMsg:
		m.detail = nil
		m.usage = usage.New(m.ctx, m.deps.Store, msg.ID, msg.Name, chart.WindowOf(m.deps.ChartWindow))
		m.active = screenUsage
		m.layout()
		return m.usage.Init()
	case common.BackMsg:
		m.usage, m.audit, m.detail = nil, nil, nil
		m.active = screenTokens
		m.layout()
		return nil
	}
	return m.broadcast(msg)
}

// broadcast gives msg to every open component.
func (m *Model) broadcast(msg tea.Msg) tea.Cmd {
	open := []common.Component{m.tokens}
	if m.form != nil {
		open = append(open, m.form)
	}
	if m.usage != nil {
		open = append(open, m.usage)
	}
	if m.audit != nil {
		open = append(open, m.audit)
	}
	if m.detail != nil {
		open = append(open, m.detail)
	}
	if m.modal != nil {
		open = append(open, m.modal)
	}
	cmds := make([]tea.Cmd, 0, len(open))
	for _, c := range open {
		_, cmd := c.Update(msg)
		cmds = append(cmds, cmd)
	}
	return tea.Batch(cmds...)
}

func (m *Model) openModal(c common.Component) tea.Cmd {
	m.modal = c
	m.layout()
	return c.Init()
}

// helpKeys is the help of the active screen or modal plus the global keys.
type helpKeys struct {
	m *Model
}

func (h helpKeys) target() help.KeyMap {
	if h.m.modal != nil {
		return h.m.modal
	}
	return h.m.current()
}

func (h helpKeys) ShortHelp() []key.Binding {
	b := h.target().ShortHelp()
	// ? and q are text while a field has focus: offered only where they work.
	if h.m.modal == nil && !h.m.current().Typing() {
		b = append(b, h.m.keys.Help)
		if h.m.active != screenForm {
			b = append(b, h.m.keys.Quit)
		}
	}
	return b
}

func (h helpKeys) FullHelp() [][]key.Binding {
	b := h.target().FullHelp()
	if h.m.modal == nil {
		var g []key.Binding
		typing := h.m.current().Typing()
		if h.m.active != screenForm && !typing {
			g = append(g, h.m.keys.Audit)
		}
		if !typing {
			g = append(g, h.m.keys.Help)
		}
		if h.m.active != screenForm && !typing {
			g = append(g, h.m.keys.Quit)
		}
		b = append(b, append(g, h.m.keys.ForceQuit))
	}
	return b
}

// layout gives the body what the status and help lines leave.
func (m *Model) layout() {
	m.help.Width = m.width
	helpH := 1
	if m.help.ShowAll {
		helpH = lipgloss.Height(m.help.View(helpKeys{m}))
	}
	m.bodyH = max(1, m.height-1-helpH)
	m.current().SetSize(m.width, m.bodyH)
	if m.modal != nil {
		m.modal.SetSize(m.width, m.bodyH)
	}
}

// View renders the body (the screen, or the modal in its middle), the status
// line and the help. Every line is cut to the window: nothing wraps. A panic
// while drawing the body is logged and shown in its place.
func (m *Model) View() string {
	var body string
	func() {
		defer func() {
			if r := recover(); r != nil {
				m.recovered("view", r, debug.Stack())
				body = m.ctx.Styles.Error.Render("This screen could not be drawn (the error is logged): press esc or q.")
			}
		}()
		if m.modal != nil {
			body = m.deps.Renderer.Place(m.width, m.bodyH, lipgloss.Center, lipgloss.Center, m.modal.View())
		} else {
			body = m.current().View()
		}
	}()
	var b strings.Builder
	fit(&b, body, m.width, m.bodyH)
	b.WriteByte('\n')
	s := m.ctx.Styles
	status := m.status
	if m.statusErr {
		status = s.Error.Render("✗ " + store.Printable(status))
	} else if status != "" {
		status = s.Status.Render(status)
	}
	b.WriteString(ansi.Truncate(status, m.width, "…"))
	b.WriteByte('\n')
	hv := m.help.View(helpKeys{m})
	fit(&b, hv, m.width, strings.Count(hv, "\n")+1)
	return b.String()
}

// fit writes exactly h lines of s, each cut to w cells.
func fit(b *strings.Builder, s string, w, h int) {
	n := 0
	for line := range strings.SplitSeq(s, "\n") {
		if n == h {
			break
		}
		if n > 0 {
			b.WriteByte('\n')
		}
		// A line never takes more cells than bytes: most need no measuring.
		if len(line) > w && table.Width(line) > w {
			line = ansi.Truncate(line, w, "")
		}
		b.WriteString(line)
		n++
	}
	for ; n < h; n++ {
		if n > 0 {
			b.WriteByte('\n')
		}
	}
}
