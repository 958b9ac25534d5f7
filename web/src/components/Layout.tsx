import { NavLink, Outlet } from "react-router";
import { useAppConfig } from "../app/config";
import { LogoutButton } from "./LogoutButton";

export function Layout() {
  const config = useAppConfig();
  const saas = config.data?.APP_MODE === "saas";
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/" className="brand">
          OpenHands
        </NavLink>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Conversations
          </NavLink>
          <NavLink to="/settings">Settings</NavLink>
          <NavLink to="/secrets">Secrets</NavLink>
          <NavLink to="/git">Git providers</NavLink>
          {saas && <NavLink to="/organizations">Organizations</NavLink>}
          {saas && <NavLink to="/api-keys">API keys</NavLink>}
        </nav>
        {saas && <LogoutButton />}
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
