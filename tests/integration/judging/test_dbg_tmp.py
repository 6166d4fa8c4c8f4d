from tests.integration.judging.test_engine_http import *  # noqa

def test_dbg(session, engine, project, server):
    version = make_version(session, project)
    make_rollouts(session, project, 12)
    config = make_judge_config(session, project, base_url=server.base_url, concurrency=4)
    (run,) = start_runs(session, project, version, [config], repeats=2)
    orig = judge_engine.write_verdicts
    def spy(engine_, snap, rows):
        n = orig(engine_, snap, rows)
        print("batch", len(rows), "inserted", n)
        return n
    judge_engine.write_verdicts = spy
    try:
        stats = _judge(engine, run)
    finally:
        judge_engine.write_verdicts = orig
    print(stats, len(_verdicts(session, run)))
