package agent

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/willscott/go-nfs-client/nfs"
)

// addrInUse is the error a dial returns when its source port is taken, made
// for real: a dial bound to a port a listener holds.
func addrInUse(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: ln.Addr()}
	_, err = d.Dial("tcp", ln.Addr().String())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("could not provoke EADDRINUSE: %v", err)
	}
	return err
}

// The storage probe once failed a whole drill's data check with "bind:
// address already in use": the NFS library picks a random source port and
// gives up when it is taken. The mount is dialled again instead, a bounded
// number of times, and other errors are not retried.
func TestNFSMountRetriesATakenSourcePort(t *testing.T) {
	inUse := addrInUse(t)
	reached := errors.New("the server was reached")
	for _, tc := range []struct {
		name      string
		fails     []error
		wantCalls int
		want      error
	}{
		{"port taken once", []error{inUse}, 2, reached},
		{"port always taken", []error{inUse, inUse, inUse, inUse}, dialAttempts, syscall.EADDRINUSE},
		{"server refuses", []error{syscall.ECONNREFUSED}, 1, syscall.ECONNREFUSED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			orig := dialMount
			t.Cleanup(func() { dialMount = orig })
			dialMount = func(string, time.Duration) (*nfs.Mount, error) {
				calls++
				if calls <= len(tc.fails) {
					return nil, tc.fails[calls-1]
				}
				return nil, reached
			}
			s := &NFSStore{Server: "nas", Export: "/data"}
			err := s.Write(context.Background(), "probe", []byte("x"))
			if calls != tc.wantCalls || !errors.Is(err, tc.want) {
				t.Errorf("dialled %d time(s), error %v; want %d, %v", calls, err, tc.wantCalls, tc.want)
			}
		})
	}
}
