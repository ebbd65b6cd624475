"""Incidents as analysts handle them: the lifecycle rules (:mod:`.lifecycle`), the tables of their
actions and mutes (:mod:`.actions_store`), the list both the command and the dashboard show
(:mod:`.overview`) and ``iomt-ad incidents`` (:mod:`.command`)."""
