"""The campaign job kind: it survives the JSON the jobs table stores."""

import json

from bedel.campaigns.jobs import RecordJob


class TestRecordJob:
    def test_a_job_reads_back_as_it_was_written_under_its_phones_key(self) -> None:
        job = RecordJob("+525511112222", "Hola Ana, ya puedes inscribirte.")
        assert RecordJob.from_payload(json.loads(json.dumps(job.to_payload()))) == job
        assert (job.kind, job.key) == ("campaigns.record", "record:+525511112222")
