package workflow.authz_test

import data.workflow.authz

routes := {
	"read-ticket": {"audience": "tickets-db", "scope": "tickets.read"},
	"translate": {"audience": "translate-api", "scope": "translate"},
	"post-message": {"audience": "chat-api", "scope": "chat.write", "check_channel": true},
}

tokens := {
	"read": {"aud": "tickets-db", "scope": "tickets.read", "workflow": "ticket-translation"},
	"translate": {"aud": "translate-api", "scope": "translate", "workflow": "ticket-translation"},
	"notify": {"aud": "chat-api", "scope": "chat.write", "workflow": "ticket-translation"},
}

scopes(token) := split(token.scope, " ")

req(route, token, body) := {
	"request": {"body": body},
	"route": {"id": route, "attributes": routes[route]},
	"subject": {"authenticated": true, "sub": "wf-step", "scopes": scopes(token)},
	"token": token,
}

post := {"channel": "C0SUPPORTFR", "text": "Ticket 4711 (translated): the printer is on fire"}

test_each_step_at_its_own_api if {
	d := authz.decision with input as req("read-ticket", tokens.read, null)
	d == {"allow": true, "reasons": ["a tickets-db token with scope tickets.read"]}
	authz.allow with input as req("translate", tokens.translate, null)
	authz.allow with input as req("post-message", tokens.notify, post)
}

test_each_step_token_works_only_at_its_own_api if {
	every token in tokens {
		every route, attributes in routes {
			allowed_only_at_own_api(route, attributes, token)
		}
	}
}

allowed_only_at_own_api(route, attributes, token) if {
	attributes.audience == token.aud
	authz.allow with input as req(route, token, post)
}

allowed_only_at_own_api(route, attributes, token) if {
	attributes.audience != token.aud
	not authz.allow with input as req(route, token, post)
}

test_audience_reason if {
	d := authz.decision with input as req("post-message", tokens.read, post)
	d.reasons == ["this route needs a token for chat-api, not tickets-db"]
}

test_audience_as_array if {
	t := object.union(tokens.translate, {"aud": ["translate-api"]})
	authz.allow with input as req("translate", t, null)
}

test_several_audiences_refused_everywhere if {
	t := object.union(tokens.notify, {"aud": ["tickets-db", "chat-api"], "scope": "tickets.read chat.write"})
	every route in object.keys(routes) {
		not authz.allow with input as req(route, t, post)
	}
	d := authz.decision with input as req("post-message", t, post)
	d.reasons == ["a step token must name exactly one audience, not chat-api, tickets-db"]
}

test_scope_required if {
	t := object.union(tokens.read, {"scope": "tickets.list"})
	d := authz.decision with input as req("read-ticket", t, null)
	d.reasons == ["this route needs scope tickets.read"]
}

test_chat_only_to_the_configured_channel if {
	d := authz.decision with input as req("post-message", tokens.notify, object.union(post, {"channel": "C0GENERAL"}))
	d.reasons == ["workflow ticket-translation may post only to channel C0SUPPORTFR"]
	not authz.allow with input as req("post-message", tokens.notify, {"text": "no channel"})
	not authz.allow with input as req("post-message", tokens.notify, "C0SUPPORTFR")
}

test_channel_follows_the_workflow if {
	t := object.union(tokens.notify, {"workflow": "invoice-digest"})
	authz.allow with input as req("post-message", t, object.union(post, {"channel": "C0FINANCE"}))
	not authz.allow with input as req("post-message", t, post)
}

test_unknown_workflow if {
	t := object.union(tokens.notify, {"workflow": "exfiltrate"})
	d := authz.decision with input as req("post-message", t, post)
	d.reasons == ["the token names no workflow with a chat channel"]
	u := object.remove(tokens.notify, ["workflow"])
	not authz.allow with input as req("post-message", u, post)
}

test_unauthenticated if {
	d := authz.decision with input as {"route": {"id": "translate", "attributes": routes.translate}, "subject": {"authenticated": false, "scopes": []}, "token": {}}
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}
