package poll

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// ErrLimit is returned when the limit passed before the condition was done.
var ErrLimit = errors.New("limit passed")

// Until calls cond at once and then every interval until it is done, for at
// most limit. It returns nil when done, ErrLimit when the limit passed, ctx's
// error when ctx ended first, and cond's error when cond stops the wait.
func Until(ctx context.Context, interval, limit time.Duration, cond func() (done bool, err error)) error {
	err := wait.PollUntilContextTimeout(ctx, interval, limit, true, func(context.Context) (bool, error) { return cond() })
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case wait.Interrupted(err):
		return ErrLimit
	}
	return err
}
