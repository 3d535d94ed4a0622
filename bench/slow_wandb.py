"""A W&B API stand-in that answers every request after DELAY seconds (bench/wandb.sh).
Just enough of UpsertBucket, CreateRunFiles, file_stream and uploads for ezflt to log a run."""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = float(sys.argv[2])


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, obj):
        time.sleep(DELAY)
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer({})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        op, v = req.get("operationName"), req.get("variables") or {}
        if op == "UpsertBucket":
            project = {"id": "p", "name": v.get("project"), "entity": {"id": "e", "name": v.get("entity") or "bench"}}
            self.answer({"data": {"upsertBucket": {"bucket": {"id": "r", "name": v.get("name"), "project": project,
                                                              "historyLineCount": 0}, "inserted": True}}})
        elif op == "CreateRunFiles":
            host = self.headers.get("Host")
            files = [{"name": f, "uploadUrl": f"http://{host}/upload/{f}"} for f in v.get("files", [])]
            self.answer({"data": {"createRunFiles": {"runID": "r", "uploadHeaders": [], "files": files}}})
        else:
            self.answer({"data": {}} if op else {"exitcode": None, "limits": {}})


srv = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
open(sys.argv[1], "w").write(str(srv.server_address[1]))
srv.serve_forever()
