package labnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a long-running process started with Host.Start.
type Proc struct {
	// Host is where it runs.
	Host *Host
	// Args are the program and its arguments.
	Args []string
	// LogPath is the file its stdout and stderr are appended to.
	LogPath string

	cmd      *exec.Cmd
	grace    time.Duration
	done     chan struct{}
	err      error // from cmd.Wait, valid once done is closed
	stopOnce sync.Once
	stopErr  error
}

// Start starts prog in the host's namespace (via `ip netns exec`) in its
// own process group, with stdin from /dev/null and stdout and stderr
// appended to logPath (created if needed).
// The lab tracks the process: Close stops it, and so does cancelling ctx.
// Run daemons in the foreground (bird -f, ...): a daemon that forks into a
// new session escapes Stop, though not Close.
func (h *Host) Start(ctx context.Context, logPath, prog string, args ...string) (*Proc, error) {
	l := h.lab
	if err := l.begin(); err != nil {
		return nil, err
	}
	defer l.inflight.Done()

	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("labnet: %s: start %s: %w", h.Name, prog, err)
	}
	defer f.Close()
	argv := append([]string{prog}, args...)

	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Netns}, argv...)...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("labnet: %s: start %s: %w", h.Name, prog, err)
	}
	l.mu.Lock()
	p := &Proc{Host: h, Args: argv, LogPath: logPath, cmd: cmd, grace: l.grace, done: make(chan struct{})}
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if ctx != nil && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { p.Stop() })
		go func() {
			<-p.done
			stop()
		}()
	}
	return p, nil
}

// Pid returns the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit status as
// exec.Cmd.Wait does (an *exec.ExitError for a non-zero exit or a signal).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	return killGroup(p.Pid(), sig)
}

// Stop stops the process if it still runs: SIGTERM to its process group,
// then SIGKILL if it has not exited after the lab's grace period. It
// returns once the process has exited; an error means it could not be
// stopped. The exit status is Wait's business. Stop is idempotent.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Proc) stop() error {
	if p.Exited() {
		return nil
	}
	pid := p.Pid()
	killGroup(pid, unix.SIGTERM)
	grace := time.NewTimer(p.grace)
	defer grace.Stop()
	select {
	case <-p.done:
	case <-grace.C:
		killGroup(pid, unix.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("labnet: %s: %s (pid %d) survived SIGKILL", p.Host.Name, p.Args[0], pid)
		}
	}
	// Members of the group that outlived its leader.
	killGroup(pid, unix.SIGKILL)
	return nil
}
