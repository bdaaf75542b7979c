# workflow-steps: one workflow, three steps, three tokens.
#
# The ticket-translation workflow reads a ticket from a database API, has an
# external translation API translate it, and posts the result to a chat
# channel. Each step holds its own token: its own audience (the one API it
# calls) and its own scope. regate fronts all three APIs, and each route names
# in `attributes` the audience and scope it needs (see ../regate.yaml), so
#
#   - a step's token works only at its own API: the db step's token is refused
#     by the translation and chat routes, and so on (audience separation);
#   - a token with several audiences is refused everywhere: a step token is
#     for exactly one API, or a leaked token would open all three;
#   - the chat step may post only to the channel its workflow is configured
#     for (data.json), read from the JSON body regate parses (route `body`).
package workflow.authz

attrs := input.route.attributes

# A JWT `aud` is a string or an array of strings (RFC 7519 §4.1.3).
token_audiences := {input.token.aud} if is_string(input.token.aud)

token_audiences := {a | some a in input.token.aud} if is_array(input.token.aud)

audience_ok if token_audiences == {attrs.audience}

scope_ok if attrs.scope in input.subject.scopes

# The channel the workflow named in the token may post to.
allowed_channel := data.workflow.workflows[input.token.workflow].chat_channel

channel_ok if not attrs.check_channel

channel_ok if {
	attrs.check_channel
	input.request.body.channel == allowed_channel
}

default allow := false

allow if {
	input.subject.authenticated
	audience_ok
	scope_ok
	channel_ok
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [sprintf("a %s token with scope %s", [attrs.audience, attrs.scope])]} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := sprintf("a step token must name exactly one audience, not %s", [concat(", ", sort(token_audiences))]) if {
	count(token_audiences) > 1
} else := sprintf("this route needs a token for %s, not %s", [attrs.audience, concat(", ", sort(token_audiences))]) if {
	not audience_ok
} else := sprintf("this route needs scope %s", [attrs.scope]) if {
	not scope_ok
} else := "the token names no workflow with a chat channel" if {
	not allowed_channel
} else := sprintf("workflow %s may post only to channel %s", [input.token.workflow, allowed_channel])
