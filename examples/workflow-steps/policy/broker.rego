# workflow-steps: the broker's scope map decides every token exchange.
#
# The workflow presents its one identity token (sub: the workflow's name,
# claim workflow) at POST /oauth2/token and asks for one step's audience and
# scope. A workflow gets, per audience, at most the scopes its scope map
# (data.json: workflow.workflows.<name>.steps) lists for that audience, for
# two minutes. regate enforces on top: never more scopes than were asked
# for, never an audience outside broker.audiences, never past max_ttl_s or
# the identity token's exp.
package workflow.broker

workflow := input.subject.claims.workflow

steps := data.workflow.workflows[workflow].steps

# Exactly one audience per step token: a leaked step token opens one API.
audience := input.requested.audience[0] if count(input.requested.audience) == 1

mapped := {s | some s in steps[audience]}

asked := {s | some s in input.requested.scope} if input.requested.scope

# No scope asked: the step's whole scope set for that audience.
asked := mapped if not input.requested.scope

granted := asked & mapped

default grant := {"allow": false, "error": "invalid_target", "reasons": ["no step of this workflow calls that audience"]}

grant := {
	"allow": true,
	"audience": audience,
	"scopes": sort(granted),
	"ttl_s": 120,
	"claims": {"workflow": workflow},
	"reasons": [sprintf("step %s of %s", [audience, workflow])],
} if {
	count(granted) > 0
	count(granted) == count(asked)
}

grant := {"allow": false, "error": "invalid_scope", "reasons": [sprintf("%s may not have %s at %s", [workflow, concat(" ", sort(asked - mapped)), audience])]} if {
	count(mapped) > 0
	count(asked - mapped) > 0
}
