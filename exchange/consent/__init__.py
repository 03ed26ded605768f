"""Consent: who may decide for a child or young person (Children Act 1989, Gillick,
Mental Capacity Act 2005, Children and Families Act 2014) and whether their recorded
decisions permit a disclosure (`consent.md`).

The rules are pure functions over dataclasses, no Flask and no database: `records` reads
FHIR Consents, `calendar` holds the dates the law turns on, `decision` decides, `explain`
writes it out for operators and `profile` holds the send-consent profile rules. `service`
holds the use cases every front door calls (record, read, change status, search,
evaluate), `queries` their SQL and who may read which Consent, `models` the table.
"""
