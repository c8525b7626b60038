package sshd

import (
	"reflect"
	"runtime/debug"
	"sync"

	tea "github.com/charmbracelet/bubbletea"
)

// guard wraps a session's model so that a panic in Init, Update, View or any
// command (batched or in sequence) ends the program the ordinary way: Bubble
// Tea then leaves the alternate screen and restores the client's terminal, and
// the session logs the panic through the server's logger. Bubble Tea's own
// recovery would print it on the server's stdout instead.
type guard struct {
	inner tea.Model
	quit  func() // asks the running program to quit

	mu    sync.Mutex
	value any
	stack []byte
	where string
}

var cmdType = reflect.TypeOf(tea.Cmd(nil))

// failure is the first panic caught, if any.
func (g *guard) failure() (value any, stack []byte, where string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.value, g.stack, g.where, g.where != ""
}

func (g *guard) failed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.where != ""
}

func (g *guard) record(where string, v any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.where == "" {
		g.value, g.stack, g.where = v, debug.Stack(), where
	}
}

func (g *guard) Init() (cmd tea.Cmd) {
	defer func() {
		if r := recover(); r != nil {
			g.record("init", r)
			cmd = tea.Quit
		}
	}()
	return g.wrap(g.inner.Init())
}

func (g *guard) Update(msg tea.Msg) (m tea.Model, cmd tea.Cmd) {
	if g.failed() {
		return g, tea.Quit
	}
	defer func() {
		if r := recover(); r != nil {
			g.record("update", r)
			m, cmd = g, tea.Quit
		}
	}()
	inner, c := g.inner.Update(msg)
	g.inner = inner
	return g, g.wrap(c)
}

func (g *guard) View() (view string) {
	if g.failed() {
		return ""
	}
	defer func() {
		if r := recover(); r != nil {
			g.record("view", r)
			view = ""
			// View runs in the event loop, which Quit waits for.
			go g.quit()
		}
	}()
	return g.inner.View()
}

// wrap makes cmd end the program on a panic instead of letting it through.
func (g *guard) wrap(cmd tea.Cmd) tea.Cmd {
	if cmd == nil {
		return nil
	}
	return func() (msg tea.Msg) {
		defer func() {
			if r := recover(); r != nil {
				g.record("command", r)
				msg = tea.QuitMsg{}
			}
		}()
		return g.wrapMsg(cmd())
	}
}

// wrapMsg wraps the commands inside tea.Batch's and tea.Sequence's messages,
// which Bubble Tea runs itself (Sequence's message type is unexported, hence
// reflection).
func (g *guard) wrapMsg(msg tea.Msg) tea.Msg {
	if msg == nil {
		return nil
	}
	v := reflect.ValueOf(msg)
	if v.Kind() != reflect.Slice || v.Type().Elem() != cmdType {
		return msg
	}
	out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
	for i := range v.Len() {
		c, _ := v.Index(i).Interface().(tea.Cmd)
		out.Index(i).Set(reflect.ValueOf(g.wrap(c)))
	}
	return out.Interface()
}
