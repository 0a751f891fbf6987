// The login page: posts the pasted token (or one given as /ui/login#token=…) to the gateway, which answers with
// the session cookie, then opens the web view.
const form = document.getElementById("login");
const input = document.getElementById("token");
const error = document.getElementById("error");

async function logIn(token) {
  error.hidden = true;
  let r;
  try {
    r = await fetch("/ui/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-K8n-UI": "1" },
      body: JSON.stringify({ token }),
    });
  } catch (e) {
    error.textContent = `The gateway did not answer (${e.message}); try again.`;
    error.hidden = false;
    return;
  }
  if (r.ok) {
    location.replace("/ui/");
    return;
  }
  let message = r.statusText;
  try { message = (await r.json()).message || message; } catch { /* not a Status */ }
  document.title = `k8n · ${r.status} ${message}`;
  error.textContent = r.status === 401 ? "401 Unauthorized: the gateway did not accept this token."
    : `${r.status}: ${message}`;
  error.hidden = false;
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  logIn(input.value.trim());
});

const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
if (fragment) {
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar and the history
  logIn(fragment);
}
