package api

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
)

// fieldError is InvalidArgument with a BadRequest detail naming the field,
// so tools can point at it and people read it in the message.
func fieldError(field, msg string) error {
	st := status.New(codes.InvalidArgument, field+": "+msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}}); err == nil {
		st = d
	}
	return st.Err()
}

// toStatus maps domain errors to gRPC codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var bad *invalid.Error
	var refused *book.RefusedError
	var standing *registry.StandingError
	var limited *quality.RateLimitedError
	switch {
	case errors.As(err, &standing):
		return status.Error(codes.FailedPrecondition, standing.Error())
	case errors.Is(err, registry.ErrRemoved):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &limited):
		// ResourceExhausted: the agent's spool keeps the batch and retries.
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(limited.RetryAfter)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.As(err, &refused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &bad):
		// The one place bad input becomes InvalidArgument, for every
		// domain package.
		return fieldError(bad.Field, bad.Msg)
	case errors.Is(err, book.ErrNotFound), errors.Is(err, registry.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, registry.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, book.ErrNotOpen), errors.Is(err, book.ErrOfferGone), errors.Is(err, book.ErrOfferChanged):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
