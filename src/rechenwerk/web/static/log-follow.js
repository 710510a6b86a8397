// Follow a running job's logs on its page: every 2 s each log box asks for the bytes after
// what it has (GET /jobs/<id>/log/<stream>?offset=N) and appends them. A box at its end
// stays at the end; a reader who scrolls up pauses the scrolling (not the reading) until
// they scroll back down. "Show only lines containing" filters both boxes in place.
// Without JavaScript the page shows the tail it was rendered with.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var KEEP_CHARS = 2 * 1024 * 1024; // what a box holds; the download has everything
  var boxes = Array.prototype.slice.call(document.querySelectorAll("pre[data-log-url]"));
  if (!boxes.length) return;
  var filterInput = document.querySelector("[data-log-filter]");
  var status = document.querySelector("[data-log-status]");
  var attemptLabel = document.querySelector("[data-log-attempt]");
  var none = document.querySelector("[data-log-none]");

  function atEnd(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 8;
  }

  function render(box) {
    var needle = filterInput ? filterInput.value : "";
    var follow = box._stick;
    if (!needle) {
      box.textContent = box._text;
    } else {
      var lower = needle.toLowerCase();
      var lines = box._text.split("\n").filter(function (l) {
        return l.toLowerCase().indexOf(lower) !== -1;
      });
      box.textContent = lines.length ? lines.join("\n") : "(no line contains \u201c" + needle + "\u201d)";
    }
    if (follow) box.scrollTop = box.scrollHeight;
  }

  function say(text) {
    if (status) status.textContent = text;
  }

  function poll(box) {
    var url = box.dataset.logUrl + "?offset=" + encodeURIComponent(box._offset);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (chunk) {
        if (chunk.attempt !== box._attempt) {
          // a new run (requeue): its log starts empty; read it from its beginning
          if (box._attempt > 0) box._text += "\n\u2014 attempt " + chunk.attempt + " \u2014\n";
          box._attempt = chunk.attempt;
          box._offset = 0;
          if (attemptLabel && chunk.attempt > 0) attemptLabel.textContent = "(attempt " + chunk.attempt + ")";
          if (none && chunk.attempt > 0) none.hidden = true;
          schedule(box, 0);
          return;
        }
        if (chunk.data) {
          box._text += chunk.data;
          if (box._text.length > KEEP_CHARS) box._text = box._text.slice(-KEEP_CHARS);
          box._offset = chunk.next_offset;
          render(box);
        }
        if (chunk.complete) {
          box.dataset.follow = "false";
          say("The job has ended; the logs are complete.");
          return;
        }
        // more is waiting already (a fast writer): fetch it at once
        schedule(box, chunk.next_offset < chunk.size ? 0 : POLL_MS);
      })
      .catch(function (err) {
        say("Could not read the log (" + err.message + "); retrying.");
        schedule(box, POLL_MS * 3);
      });
  }

  function schedule(box, ms) {
    window.setTimeout(function () { poll(box); }, ms);
  }

  boxes.forEach(function (box) {
    box._text = box.textContent;
    box._offset = parseInt(box.dataset.offset || "0", 10);
    box._attempt = parseInt(box.dataset.attempt || "0", 10);
    box._stick = true;
    box.scrollTop = box.scrollHeight; // the newest lines first, not hidden below
    box.addEventListener("scroll", function () {
      var was = box._stick;
      box._stick = atEnd(box);
      if (box.dataset.follow === "true" && was !== box._stick) {
        say(box._stick ? "Following the end again." :
          "Paused at your position in " + box.id.replace("log-", "") + "; scroll to the end to follow again.");
      }
    });
    if (box.dataset.follow === "true") schedule(box, POLL_MS);
  });
  if (filterInput) {
    filterInput.addEventListener("input", function () { boxes.forEach(render); });
  }
})();
