#pragma once
// `granary admin ...`: the command line of the admin API (admin_cli.cpp), a client of a running Granary's
// admin endpoint. main() hands it the arguments after "admin".

namespace granary::admin {

/// Runs one admin command; @return the process exit status.
int adminMain(int argc, char** argv);

}  // namespace granary::admin
