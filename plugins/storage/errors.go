package storage

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/timgw/timgw/plugins/storage/storagepb"
)

// toStatus turns a Backend error into a gRPC status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrRecallWindow):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrInUse):
		code = codes.AlreadyExists
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// fromStatus turns a gRPC error from the plugin back into the SDK's errors, keeping the
// plugin's message.
func fromStatus(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("storage %s: %w", op, err)
	}
	var base error
	switch st.Code() {
	case codes.NotFound:
		base = ErrNotFound
	case codes.FailedPrecondition:
		base = ErrRecallWindow
	case codes.InvalidArgument:
		base = ErrInvalid
	case codes.AlreadyExists:
		base = ErrInUse
	case codes.Unavailable:
		base = ErrUnavailable
	case codes.Canceled:
		base = context.Canceled
	case codes.DeadlineExceeded:
		base = context.DeadlineExceeded
	default:
		return fmt.Errorf("storage %s: %s", op, st.Message())
	}
	return fmt.Errorf("storage %s: %s: %w", op, st.Message(), base)
}

// CheckMessage reports what makes m unfit to append (a plugin's first check of every
// message of an AppendRequest), or nil.
func CheckMessage(m *pb.Message) error {
	switch {
	case m == nil:
		return errors.New("no message")
	case m.Conv == "":
		return errors.New("empty conversation")
	case m.Id == "":
		return errors.New("empty id")
	case m.From == "":
		return errors.New("empty from")
	case m.ReadFanout && (m.ChatType != ChatTypeGroup || m.GroupId == "" || m.Conv != GroupConv(m.GroupId)):
		return errors.New("read fan-out of a chat that is not a group chat")
	}
	return nil
}
