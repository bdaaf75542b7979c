# Scenario g's broker entrypoint: a data scientist's token exchanged for a
# batch-api token with the requested scope, two minutes.
package bench.broker

import rego.v1

default grant := {"allow": false}

grant := {"allow": true, "scopes": input.requested.scope, "ttl_s": 120, "reasons": ["data scientist"]} if {
	"data_scientist" in input.subject.roles
	input.requested.audience == ["batch-api"]
}
