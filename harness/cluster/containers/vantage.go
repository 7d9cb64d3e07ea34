package containers

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"rackdrill.dev/rackdrill/harness/cluster"
)

// LabelVantage marks a vantage-point container (not a machine of the rack).
const LabelVantage = "rackdrill.dev/vantage"

var _ cluster.InternetVantage = (*Provider)(nil)

// InternetDialer dials from the Internet vantage point: its sockets are made in
// that container's network namespace, which has no route to the LAN, so the
// internet probe sees what an Internet user sees.
func (p *Provider) InternetDialer(ctx context.Context) (cluster.Dialer, error) {
	dc, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	res, err := dc.ContainerList(ctx, client.ContainerListOptions{Filters: p.rackFilter().Add("label", LabelVantage+"=internet")})
	if err != nil {
		return nil, err
	}
	if len(res.Items) == 0 {
		return nil, fmt.Errorf("rack %s has no Internet vantage point (is it up?)", p.rack)
	}
	id := res.Items[0].ID
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ins, err := dc.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return nil, err
		}
		if ins.Container.State == nil || ins.Container.State.Pid == 0 {
			return nil, fmt.Errorf("the Internet vantage point %s is not running", id[:12])
		}
		return dialInNetns(ctx, ins.Container.State.Pid, network, addr)
	}, nil
}

// dialInNetns dials from the network namespace of process pid. The socket is
// created while the calling thread is in that namespace and stays there.
func dialInNetns(ctx context.Context, pid int, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never returned to the pool if switching back fails.
		runtime.LockOSThread()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter the vantage point's network namespace: %w", err)}
			return
		}
		c, derr := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, derr}
	}()
	r := <-ch
	return r.c, r.err
}
