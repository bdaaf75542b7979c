package inference.authz_test

import data.inference.authz

call(method, scopes) := {
	"request": {"grpc": {"service": "inference.GRPCInferenceService", "method": method}},
	"subject": {"authenticated": true, "sub": "svc", "scopes": scopes},
}

test_infer_scope_may_run_inference if {
	authz.allow with input as call("ModelInfer", ["infer"])
	authz.allow with input as call("ModelStreamInfer", ["infer"])
}

test_infer_scope_may_not_read_metadata if {
	d := authz.decision with input as call("ModelMetadata", ["infer"])
	d == {"allow": false, "reasons": {"no scope of [infer] grants ModelMetadata"}}
}

test_ops_scope_may_read_metadata if {
	authz.allow with input as call("ModelMetadata", ["ops"])
}

test_no_scope_no_call if {
	not authz.allow with input as call("ModelInfer", [])
}

test_other_service_denied if {
	not authz.allow with input as {
		"request": {"grpc": {"service": "other.Service", "method": "ModelInfer"}},
		"subject": {"scopes": ["ops"]},
	}
}
