// Package installtest holds the install test of the bwx .deb packages: it
// builds them with scripts/package, installs them in a fresh Debian root
// made with debootstrap, runs both daemons there with the shipped configs as
// the bwx user, upgrades, removes and purges, checking what Debian policy
// and the packages promise at each step. It has no code outside its tests.
package installtest
