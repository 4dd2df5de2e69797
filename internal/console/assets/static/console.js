// The console's only script: confirm before an action, and apply the
// virtual proxy filter as soon as it is chosen. The pages work without it.
'use strict';
document.addEventListener('submit', function (e) {
  var msg = e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) e.preventDefault();
});
document.addEventListener('change', function (e) {
  if (e.target.hasAttribute('data-autosubmit')) e.target.form.requestSubmit();
});
