package jobs

import (
	"fmt"
	"strings"

	"github.com/endcall/endcall"
)

// outageMark starts the error of a task that failed because a dependency
// (the database) was unavailable, so that the last error asynq keeps with an
// archived task says so (see Enqueuer.Requeue).
const outageMark = "unavailable: "

// MarkOutage returns err marked as an outage when its code is
// endcall.EUNAVAILABLE, else err unchanged. The worker applies it to every
// task's error.
func MarkOutage(err error) error {
	if err == nil || endcall.ErrorCode(err) != endcall.EUNAVAILABLE || strings.HasPrefix(err.Error(), outageMark) {
		return err
	}
	return fmt.Errorf("%s%w", outageMark, err)
}

// failedOnOutage reports whether a task's last error was an outage.
func failedOnOutage(lastErr string) bool { return strings.HasPrefix(lastErr, outageMark) }
