# mailbox-agent: an email-categorizing agent, least privilege.
#
# The agent's token names its ONE assigned team mailbox (claim `mailbox`) and
# carries the scope `mail.categorize`. With it the agent may
#
#   list the mailbox's messages, read a message, and
#   PATCH a message with a JSON body that sets `categories` and nothing else;
#
# in that mailbox only. Sending, deleting, moving, touching any other field of a
# message, or any other mailbox: denied. The PATCH route parses the JSON body
# into `input.request.body` (route `body` in ../regate.yaml) so the policy can
# see which fields a PATCH would change.
package mailbox.authz

# Route ids the agent may call (see ../regate.yaml). Everything else is denied.
agent_routes := {"list-messages", "read-message", "update-message"}

required_scope := "mail.categorize"

# Mailbox addresses compare case-insensitively, as mail systems resolve them.
assigned_mailbox := lower(input.token.mailbox) if {
	is_string(input.token.mailbox)
	input.token.mailbox != ""
}

requested_mailbox := lower(input.request.params.mailbox)

has_scope if required_scope in input.subject.scopes

# Helper rules rather than `not is_object(input.request.body)`: OPA evaluates a
# call's arguments before the `not`, so with no body at all that expression
# would be undefined instead of true.
body_is_object if is_object(input.request.body)

# A message update that changes only the categories: {"categories": ["..."]}.
categories_only(body) if {
	is_object(body)
	object.keys(body) == {"categories"}
	is_array(body.categories)
	every c in body.categories {
		is_string(c)
		c != ""
	}
}

body_ok if input.route.id != "update-message"

body_ok if {
	input.route.id == "update-message"
	categories_only(input.request.body)
}

default allow := false

allow if {
	input.subject.authenticated
	has_scope
	input.route.id in agent_routes
	assigned_mailbox == requested_mailbox
	body_ok
}

default decision := {"allow": false, "reasons": ["no rule allowed this request"]}

decision := {"allow": true, "reasons": [sprintf("%s in the assigned mailbox %s", [input.route.id, assigned_mailbox])]} if allow

decision := {"allow": false, "reasons": [deny_reason]} if not allow

deny_reason := "request is not authenticated" if {
	not input.subject.authenticated
} else := sprintf("the token lacks scope %s", [required_scope]) if {
	not has_scope
} else := "the token names no assigned mailbox" if {
	not assigned_mailbox
} else := sprintf("the agent may not call %s", [input.route.id]) if {
	not input.route.id in agent_routes
} else := sprintf("the agent is assigned mailbox %s, not %s", [assigned_mailbox, requested_mailbox]) if {
	assigned_mailbox != requested_mailbox
} else := body_reason

body_reason := "a message update must be a JSON object" if {
	not body_is_object
} else := sprintf("a message update may change only categories, not: %s", [concat(", ", sort(other_fields))]) if {
	count(other_fields) > 0
} else := "categories must be a list of non-empty strings"

other_fields := {k | some k, _ in input.request.body} - {"categories"}
