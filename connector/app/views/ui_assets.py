"""The on-call pages' one style sheet and one script, and the Content-Security-Policy that
admits exactly these two (by their SHA-256 hashes: CSP Level 3, "hash-source"), nothing else.

The script polls the page's own URL with `format=fragment&digest=<what it shows>` (a small JSON
answer: the digest, the time, and the escaped HTML of `<main>` only when it changed), swaps
`<main>` only then (no reload, no flicker; the focused link keeps its focus) and says when it last
updated. No `eval`, no inline
event handlers, no style attributes: the policy needs no `unsafe-*`.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root{--ok:#146c2e;--bad:#b3261e;--busy:#7a4f00;--none:#4a4a4a;--line:#c9c9c9;--bg:#fff;
--fg:#1b1b1b;--muted:#595959;--card:#f6f6f6;font-family:system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;line-height:1.4;color:var(--fg);background:var(--bg)}
*{box-sizing:border-box}body{margin:0}
a{color:#0b57a4}a:focus-visible,button:focus-visible,input:focus-visible,summary:focus-visible
{outline:3px solid #0b57a4;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;padding:.75rem 1rem;
border-bottom:1px solid var(--line)}
header h1{font-size:1.25rem;margin:0}header .updated{color:var(--muted);font-size:.9rem}
header form{margin-left:auto;display:flex;gap:.25rem}
input{font:inherit;padding:.25rem .4rem;width:12rem;max-width:50vw}
button{font:inherit;padding:.25rem .6rem}
main{padding:0 1rem 2rem;max-width:96rem}
h2{font-size:1.1rem;margin:1.25rem 0 .5rem}h3{font-size:1rem;margin:1rem 0 .4rem}
code,.sha{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.92em}
.st{white-space:nowrap;font-weight:600}
.st.succeeded{color:var(--ok)}.st.failed{color:var(--bad)}
.st.progressing,.st.waiting,.st.completing{color:var(--busy)}.st.none{color:var(--none)}
.card{background:var(--card);border:1px solid var(--line);border-left:.4rem solid var(--none);
border-radius:.4rem;padding:.6rem .8rem;margin:.5rem 0}
.card.failed{border-left-color:var(--bad)}.card.succeeded{border-left-color:var(--ok)}
.card.waiting,.card.progressing,.card.completing{border-left-color:var(--busy)}
.card p{margin:.25rem 0}.card ul{margin:.25rem 0;padding-left:1.2rem}
.grid{display:flex;flex-wrap:wrap;gap:.35rem;list-style:none;padding:0;margin:.4rem 0}
.tile{border:1px solid var(--line);border-top:.3rem solid var(--none);border-radius:.3rem;
padding:.25rem .45rem;min-width:9rem;background:var(--bg)}
.tile.succeeded{border-top-color:var(--ok)}.tile.failed{border-top-color:var(--bad)}
.tile.progressing{border-top-color:var(--busy)}
.tile b{display:block;font-weight:600}.tile small{color:var(--muted)}
.counts{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:.25rem 0 1rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top;
overflow-wrap:break-word;word-break:normal;hyphens:none}
th{font-weight:600;background:var(--card)}
caption{text-align:left;font-weight:600;padding:.25rem 0}
.msg{max-width:40rem}time,td b,.tile b{white-space:nowrap}
@media (max-width:40rem){
header form{margin-left:0;width:100%}input{flex:1;max-width:none}
table,caption,thead,tbody,tr,th,td{display:block}thead{position:absolute;left:-999px}
tr{border:1px solid var(--line);border-radius:.3rem;margin:.4rem 0;padding:.2rem .4rem}
td{border:0;padding:.15rem 0}td::before{content:attr(data-label) ": ";color:var(--muted)}
.tile{min-width:0;flex:1 1 45%}}
"""

SCRIPT = """
(() => {
  const main = document.querySelector("main");
  const note = document.getElementById("updated");
  const period = Math.max(1, Number(document.body.dataset.refresh || "15")) * 1000;
  const url = new URL(location.href);
  url.searchParams.set("format", "fragment");
  async function tick() {
    try {
      url.searchParams.set("digest", main.dataset.digest || "");
      const answer = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store",
                                       credentials: "same-origin"});
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const data = await answer.json();
      if (data.digest !== main.dataset.digest && typeof data.main === "string") {
        const focused = document.activeElement && document.activeElement.id;
        main.innerHTML = data.main;
        main.dataset.digest = data.digest;
        const again = focused && document.getElementById(focused);
        if (again) again.focus();
      }
      note.textContent = "Updated " + data.updated;
      note.dataset.state = "ok";
    } catch (error) {
      note.textContent = "Update failed (" + error.message + "), retrying; last " +
        (note.dataset.last || "at load");
      note.dataset.state = "failed";
    }
    note.dataset.last = note.textContent;
    setTimeout(tick, period);
  }
  setTimeout(tick, period);
})();
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_hash(SCRIPT)}",
        f"style-src {_hash(STYLE)}",
        "connect-src 'self'",
        "img-src data:",  # the empty favicon: no request for /favicon.ico
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a function key in the address must not leak by links
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
