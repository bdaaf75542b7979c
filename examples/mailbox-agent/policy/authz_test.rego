package mailbox.authz_test

import data.mailbox.authz

agent := {"authenticated": true, "sub": "categorizer-agent", "scopes": ["mail.categorize"]}

claims := {"sub": "categorizer-agent", "mailbox": "support@contoso.example", "scope": "mail.categorize"}

req(route, mailbox) := {
	"request": {"method": "GET", "params": {"mailbox": mailbox, "message": "AAMk1"}},
	"route": {"id": route, "attributes": {}},
	"subject": agent,
	"token": claims,
}

patch(mailbox, body) := object.union(req("update-message", mailbox), {"request": {"method": "PATCH", "body": body}})

test_list_and_read_the_assigned_mailbox if {
	d := authz.decision with input as req("list-messages", "support@contoso.example")
	d == {"allow": true, "reasons": ["list-messages in the assigned mailbox support@contoso.example"]}
	authz.allow with input as req("read-message", "support@contoso.example")
}

test_mailbox_compares_case_insensitively if {
	authz.allow with input as req("read-message", "Support@Contoso.example")
}

test_set_categories if {
	authz.allow with input as patch("support@contoso.example", {"categories": ["Billing", "Urgent"]})
	authz.allow with input as patch("support@contoso.example", {"categories": []})
}

test_another_mailbox_denied if {
	d := authz.decision with input as req("list-messages", "ceo@contoso.example")
	d == {"allow": false, "reasons": ["the agent is assigned mailbox support@contoso.example, not ceo@contoso.example"]}
	not authz.allow with input as patch("ceo@contoso.example", {"categories": ["Spam"]})
}

test_send_and_delete_denied if {
	d := authz.decision with input as req("send-mail", "support@contoso.example")
	d.reasons == ["the agent may not call send-mail"]
	e := authz.decision with input as req("delete-message", "support@contoso.example")
	e.reasons == ["the agent may not call delete-message"]
}

test_patch_touching_other_fields_denied if {
	d := authz.decision with input as patch("support@contoso.example", {"categories": ["Billing"], "isRead": true, "subject": "x"})
	d.reasons == ["a message update may change only categories, not: isRead, subject"]
	e := authz.decision with input as patch("support@contoso.example", {"flag": {"flagStatus": "flagged"}})
	e.reasons == ["a message update may change only categories, not: flag"]
}

test_patch_with_malformed_categories_denied if {
	d := authz.decision with input as patch("support@contoso.example", {"categories": "Billing"})
	d.reasons == ["categories must be a list of non-empty strings"]
	not authz.allow with input as patch("support@contoso.example", {"categories": ["ok", 7]})
	not authz.allow with input as patch("support@contoso.example", {"categories": [""]})
}

test_patch_body_not_an_object_denied if {
	d := authz.decision with input as patch("support@contoso.example", [{"categories": ["x"]}])
	d.reasons == ["a message update must be a JSON object"]
}

test_patch_without_a_parsed_body_denied if {
	# regate leaves input.request.body out when the body is not JSON.
	inp := req("update-message", "support@contoso.example")
	d := authz.decision with input as inp
	d == {"allow": false, "reasons": ["a message update must be a JSON object"]}
}

test_token_without_mailbox_denied if {
	inp := object.union(req("list-messages", "support@contoso.example"), {"token": {"mailbox": ""}})
	d := authz.decision with input as inp
	d.reasons == ["the token names no assigned mailbox"]
	not authz.allow with input as object.union(req("list-messages", "support@contoso.example"), {"token": {"mailbox": ["support@contoso.example"]}})
}

test_token_without_scope_denied if {
	inp := object.union(req("list-messages", "support@contoso.example"), {"subject": {"scopes": ["mail.read"]}})
	d := authz.decision with input as inp
	d.reasons == ["the token lacks scope mail.categorize"]
}

test_unauthenticated_denied if {
	d := authz.decision with input as object.union(req("list-messages", "support@contoso.example"), {"subject": {"authenticated": false, "scopes": []}})
	d == {"allow": false, "reasons": ["request is not authenticated"]}
}
