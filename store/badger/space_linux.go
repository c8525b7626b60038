package badger

import (
	"errors"
	"os"
	"syscall"
)

// freeBytes is the space (bytes) on dir's filesystem available to this
// process; ok is false when the filesystem does not say.
func freeBytes(dir string) (free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}

// freeFiles is how many more files (inodes) dir's filesystem can hold; ok is
// false when it does not say or has no fixed number of them (f_files 0).
func freeFiles(dir string) (free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Files == 0 {
		return 0, false
	}
	return int64(st.Ffree), true
}

// allocatedBytes is the space (bytes) the file's blocks take.
func allocatedBytes(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// fallocKeepSize is FALLOC_FL_KEEP_SIZE: allocate without changing the size.
const fallocKeepSize = 0x1

// allocateFile gives the first limit bytes of the file (all of it when it is
// shorter) blocks, so that writes through a mapping of them never fault.
// Filesystems without fallocate are left to the free-space reserve.
func allocateFile(path string, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	err = syscall.Fallocate(int(f.Fd()), fallocKeepSize, 0, min(fi.Size(), limit))
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: path, Err: err}
	}
	return nil
}
