# METADATA
# title: gRPC inference authorization
# description: Which scopes may call which KServe v2 gRPC methods.
package inference.authz

# Methods each scope grants.
grants := {
	"infer": {"ModelInfer", "ModelStreamInfer"},
	"ops": {"ModelInfer", "ModelStreamInfer", "ModelMetadata", "ServerReady", "ServerLive"},
}

default allow := false

allow if {
	input.request.grpc.service == "inference.GRPCInferenceService"
	some scope in input.subject.scopes
	input.request.grpc.method in grants[scope]
}

reasons contains sprintf("no scope of [%s] grants %s", [concat(", ", input.subject.scopes), input.request.grpc.method]) if not allow

decision := {"allow": allow, "reasons": reasons}
