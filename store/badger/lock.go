package badger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/apptokens/apptokens/store"
)

// lockFile is the file in the database directory that one process holds (flock)
// while it has the database open. The holder writes who it is into it (lockInfo),
// so that a refused process can say who holds the database and, when it is
// `serve`, what to run instead. The words are trusted only while their writer
// holds the lock: a crashed holder's words stay in the file, but its lock does not.
const lockFile = "apptokens.lock"

// legacyServeFile is where older versions of `serve` wrote their SSH address; a
// new holder removes it.
const legacyServeFile = "serve.addr"

// Holders named in a LockedError.
const (
	HolderServe = store.HolderServe // apptokens serve
	HolderLocal = store.HolderLocal // the TUI or a local command
)

// lockInfo is what the holder writes into the lock file.
type lockInfo struct {
	PID    int    `json:"pid"`
	Holder string `json:"holder"`
	SSH    string `json:"ssh,omitempty"`
}

// LockedError is returned by Open when another process holds the database
// (errors.Is store.ErrLocked).
type LockedError struct {
	Dir string
	// Holder is HolderServe or HolderLocal when the holder said who it is, else "".
	Holder string
	// PID is the holder's process ID, 0 when unknown.
	PID int
	// SSHAddr is the SSH address `serve` announced, if it did (control
	// characters escaped).
	SSHAddr string
}

func (e *LockedError) Error() string {
	switch e.Holder {
	case HolderServe:
		msg := fmt.Sprintf("database %s is in use by apptokens serve (PID %d", e.Dir, e.PID)
		if e.SSHAddr != "" {
			msg += ", SSH on " + e.SSHAddr
		}
		return msg + ")"
	case HolderLocal:
		return fmt.Sprintf("database %s is in use by another apptokens (PID %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("database %s is in use by another process", e.Dir)
}

func (e *LockedError) Unwrap() error { return store.ErrLocked }

// HeldBy says who holds the database (store.HeldError).
func (e *LockedError) HeldBy() (holder, sshAddr string) { return e.Holder, e.SSHAddr }

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		le := &LockedError{Dir: dir}
		if info, ok := lockHolder(f); ok {
			le.Holder, le.PID, le.SSHAddr = info.Holder, info.PID, store.Printable(info.SSH)
		}
		f.Close()
		return nil, le
	}
	// Best effort: on a full disk the words may not fit, and the others then
	// only learn that the database is in use.
	_ = writeLockInfo(f, lockInfo{PID: os.Getpid(), Holder: HolderLocal})
	_ = os.Remove(filepath.Join(dir, legacyServeFile))
	return f, nil
}

func writeLockInfo(f *os.File, info lockInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := f.WriteAt(b, 0); err != nil {
		_ = f.Truncate(0) // no words rather than half of them
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// lockHolder reads who holds the lock of f, and says ok only when the process
// named there holds it now: per /proc/locks where the system lists locks, else
// as long as that process lives.
func lockHolder(f *os.File) (lockInfo, bool) {
	var info lockInfo
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 4096), 4096))
	if err != nil || json.Unmarshal(b, &info) != nil || info.PID <= 0 || info.Holder != HolderServe && info.Holder != HolderLocal {
		return lockInfo{}, false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err == nil {
		if pids, listed := flockHolders(st.Ino); listed {
			for _, pid := range pids {
				if pid == info.PID {
					return info, true
				}
			}
			return lockInfo{}, false
		}
	}
	if err := syscall.Kill(info.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return lockInfo{}, false // the writer is gone: its words are stale
	}
	return info, true
}

// flockHolders lists the processes that /proc/locks says hold a flock on
// inode ino; listed is false when /proc/locks cannot be read or lists no flock
// of that inode (some filesystems show another inode there).
func flockHolders(ino uint64) (pids []int, listed bool) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	suffix := ":" + strconv.FormatUint(ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 3346 00:2d:4242 0 EOF  (waiters have "->")
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], suffix) {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, len(pids) > 0
}

// Announce tells processes refused by the lock that `serve` holds the database
// and listens for SSH on addr, so that they can say what to run instead. It
// does nothing for an in-memory engine.
func (e *Engine) Announce(sshAddr string) error {
	if e.lock == nil {
		return nil
	}
	return writeLockInfo(e.lock, lockInfo{PID: os.Getpid(), Holder: HolderServe, SSH: sshAddr})
}

func (e *Engine) unlock() {
	if e.lock != nil {
		_ = e.lock.Truncate(0) // a clean exit leaves no words behind
		_ = syscall.Flock(int(e.lock.Fd()), syscall.LOCK_UN)
		e.lock.Close()
		e.lock = nil
	}
}
