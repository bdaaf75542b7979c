package workflow.broker_test

import data.workflow.broker

identity := {"sub": "ticket-translation", "claims": {"workflow": "ticket-translation"}}

ask(aud, scope) := {"subject": identity, "requested": {"audience": aud, "scope": scope}}

test_each_step_gets_its_scope if {
	g := broker.grant with input as ask(["translate-api"], ["translate"])
	g.allow
	g.audience == "translate-api"
	g.scopes == ["translate"]
	g.ttl_s == 120
	g.claims.workflow == "ticket-translation"
}

test_no_scope_asked_gets_the_steps_scopes if {
	g := broker.grant with input as {"subject": identity, "requested": {"audience": ["chat-api"]}}
	g.scopes == ["chat.write"]
}

test_scope_of_another_step_refused if {
	g := broker.grant with input as ask(["tickets-db"], ["tickets.read", "chat.write"])
	not g.allow
	g.error == "invalid_scope"
}

test_audience_outside_the_scope_map_refused if {
	g := broker.grant with input as ask(["billing-db"], ["tickets.read"])
	not g.allow
	g.error == "invalid_target"
}

test_two_audiences_refused if {
	g := broker.grant with input as ask(["tickets-db", "chat-api"], ["tickets.read"])
	not g.allow
}

test_other_workflow_has_fewer_steps if {
	other := {"sub": "invoice-digest", "claims": {"workflow": "invoice-digest"}}
	g := broker.grant with input as {"subject": other, "requested": {"audience": ["chat-api"], "scope": ["chat.write"]}}
	not g.allow
}
