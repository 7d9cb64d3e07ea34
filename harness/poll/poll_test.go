package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntilTellsItsOutcomesApart(t *testing.T) {
	calls := 0
	if err := Until(context.Background(), time.Millisecond, time.Second, func() (bool, error) { calls++; return calls == 3, nil }); err != nil || calls != 3 {
		t.Errorf("done on the third call: %v after %d calls", err, calls)
	}
	if err := Until(context.Background(), time.Millisecond, 20*time.Millisecond, func() (bool, error) { return false, nil }); !errors.Is(err, ErrLimit) {
		t.Errorf("never done: %v, want ErrLimit", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Until(ctx, time.Millisecond, time.Second, func() (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	stop := errors.New("stop")
	if err := Until(context.Background(), time.Millisecond, time.Second, func() (bool, error) { return false, stop }); !errors.Is(err, stop) {
		t.Errorf("stopped by the condition: %v", err)
	}
}
